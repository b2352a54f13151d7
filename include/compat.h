/*-------------------------------------------------------------------------
 *
 * compat.h
 *		The differences between the server versions plcoordinator builds
 *		against (PostgreSQL 15+, Greenplum 6 on 9.4, Greenplum 7 on 12),
 *		kept in one place.
 *
 * Only PostgreSQL 15 is built and tested on this project's machines; the
 * Greenplum branches follow the servers' headers and are not yet run.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		include/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PLCOORDINATOR_COMPAT_H
#define PLCOORDINATOR_COMPAT_H

/*
 * PostgreSQL 15 requires shared memory to be requested from
 * shmem_request_hook; older servers request it directly in _PG_init.
 */
#if PG_VERSION_NUM >= 150000
#define PLCOORD_HAVE_SHMEM_REQUEST_HOOK 1
#endif

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/* Greenplum's content id of this instance; PostgreSQL has none. */
#ifdef GP_VERSION_NUM
#include "cdb/cdbvars.h"
#define PLCOORD_SEGINDEX (GpIdentity.segindex)
#else
#define PLCOORD_SEGINDEX (-1)
#endif

#endif							/* PLCOORDINATOR_COMPAT_H */
