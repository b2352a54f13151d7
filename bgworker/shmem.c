/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		The coordinator's shared memory: state, address, container table.
 *
 * The layout (PlcoordShared) is plain C and lives in plcoordinator.h.  Only
 * the coordinator's main thread writes it, holding the plcoordinator
 * LWLock exclusively; backends read it holding the lock shared, so a
 * reader never sees a half-written row.  A condition variable next to it
 * lets backends sleep until the coordinator reaches a state.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		bgworker/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "plcoordinator.h"

PlcoordShared *plcoord_shared = NULL;
static ConditionVariable *plcoord_state_cv = NULL;
static LWLock *plcoord_lock = NULL;

#ifdef PLCOORD_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * plcoord_table_size
 *		Bytes needed for the shared state and the container table; the
 *		condition variable follows them.
 */
static Size
plcoord_table_size(void)
{
	Size		size = offsetof(PlcoordShared, rows);

	size = add_size(size, mul_size(plcoord_max_container_number,
								   sizeof(PlcoordContainerRow)));
	return MAXALIGN(size);
}

static Size
plcoord_shmem_size(void)
{
	return add_size(plcoord_table_size(), sizeof(ConditionVariable));
}

/*
 * plcoord_shmem_request
 *		Requests the space and the LWLock.
 */
static void
plcoord_shmem_request(void)
{
#ifdef PLCOORD_HAVE_SHMEM_REQUEST_HOOK
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(plcoord_shmem_size());
	RequestNamedLWLockTranche("plcoordinator", 1);
}

/*
 * plcoord_shmem_startup
 *		Attaches to (and on first use initialises) the shared state.
 */
static void
plcoord_shmem_startup(void)
{
	bool		found;
	char	   *base;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	/* Reset in case this is a restart within the postmaster. */
	plcoord_shared = NULL;
	plcoord_state_cv = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	base = ShmemInitStruct("plcoordinator", plcoord_shmem_size(), &found);
	plcoord_shared = (PlcoordShared *) base;
	plcoord_state_cv = (ConditionVariable *) (base + plcoord_table_size());
	if (!found)
	{
		memset(base, 0, plcoord_shmem_size());
		plcoord_shared->state = PLCOORD_STATE_UNINITIALIZED;
		plcoord_shared->max_rows = plcoord_max_container_number;
		ConditionVariableInit(plcoord_state_cv);
	}
	plcoord_lock = &(GetNamedLWLockTranche("plcoordinator"))->lock;
	LWLockRelease(AddinShmemInitLock);
}

/*
 * plcoord_shmem_init
 *		Installs the hooks; called from _PG_init.
 */
void
plcoord_shmem_init(void)
{
#ifdef PLCOORD_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = plcoord_shmem_request;
#else
	plcoord_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = plcoord_shmem_startup;
}

/*
 * plcoord_shmem_lock / plcoord_shmem_unlock
 *		Take and release the lock that guards PlcoordShared.
 */
void
plcoord_shmem_lock(bool exclusive)
{
	if (plcoord_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("plcoordinator shared memory is not initialized"),
				 errhint("Add plcoordinator to \"shared_preload_libraries\" and restart the server.")));
	LWLockAcquire(plcoord_lock, exclusive ? LW_EXCLUSIVE : LW_SHARED);
}

void
plcoord_shmem_unlock(void)
{
	LWLockRelease(plcoord_lock);
}

/*
 * plcoord_state_broadcast
 *		Wakes every backend sleeping in plcoord_wait_for_state().
 */
void
plcoord_state_broadcast(void)
{
	ConditionVariableBroadcast(plcoord_state_cv);
}

/*
 * plcoord_wait_for_state
 *		Sleeps until the coordinator is in the given state or timeout_ms
 *		passed.  Returns whether the state was reached.  Cancellable.
 */
bool
plcoord_wait_for_state(int32_t state, long timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);
	bool		reached = false;

	ConditionVariablePrepareToSleep(plcoord_state_cv);
	for (;;)
	{
		long		left;

		plcoord_shmem_lock(false);
		reached = (plcoord_shared->state == state);
		plcoord_shmem_unlock();
		if (reached)
			break;

		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0)
			break;

		/*
		 * The timed sleep also guards against a broadcast missed by a
		 * worker that died between changing state and broadcasting.
		 */
		ConditionVariableTimedSleep(plcoord_state_cv, Min(left, 1000),
									PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return reached;
}
