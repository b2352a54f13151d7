/*-------------------------------------------------------------------------
 *
 * access.c
 *		PL/Container's role rule, checked in the backend before a request is
 *		sent: a runtime with roles, network access or devices may only be
 *		used by members of one of its roles.  Superusers pass.
 *
 * The coordinator publishes each runtime's rule in shared memory; role
 * membership needs the catalogs, which only a backend can read.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		bgworker/access.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/varlena.h"

#include "plcoordinator.h"

/*
 * plcoord_check_runtime_access
 *		Raises ERROR 42501 if the current user may not use runtime_id.  A
 *		runtime the coordinator does not know is left to the coordinator,
 *		which answers "unknown runtime".
 */
void
plcoord_check_runtime_access(const char *runtime_id)
{
	PlcoordRuntimeRow row;
	bool		found = false;
	int			i;
	List	   *roles;
	ListCell   *lc;

	plcoord_shmem_lock(false);
	for (i = 0; i < plcoord_shared->nruntime_rows; i++)
	{
		if (strcmp(plcoord_shared->runtimes[i].runtime_id, runtime_id) == 0)
		{
			row = plcoord_shared->runtimes[i];
			found = true;
			break;
		}
	}
	plcoord_shmem_unlock();

	if (!found || !row.user_control || superuser())
		return;

	if (row.roles[0] == '\0')
	{
		ereport(WARNING,
				(errmsg("to access network or physical devices, permission must be granted explicitly in the runtime configuration"),
				 errhint("Set <setting roles=\"<role name>\"/> in runtime \"%s\".", runtime_id)));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("current user does not have privilege to use runtime \"%s\"", runtime_id)));
	}

	if (!SplitIdentifierString(pstrdup(row.roles), ',', &roles))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not parse the role list \"%s\" of runtime \"%s\"", row.roles, runtime_id)));

	foreach(lc, roles)
	{
		Oid			role = get_role_oid((char *) lfirst(lc), true);

		if (OidIsValid(role) && is_member_of_role(GetUserId(), role))
			return;
	}

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("current user does not have privilege to use runtime \"%s\"", runtime_id),
			 errdetail("Runtime \"%s\" is limited to members of: %s.", runtime_id, row.roles),
			 errhint("Ask an administrator to grant you one of these roles.")));
}
