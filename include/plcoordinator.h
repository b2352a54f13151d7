/*-------------------------------------------------------------------------
 *
 * plcoordinator.h
 *		Public C API of plcoordinator for backends (and the plcontainer
 *		extension), the shared-memory layout, and the GUC variables.
 *
 * A backend asks the coordinator for a container of a runtime with
 * plcoord_acquire(); the coordinator starts or reuses one and answers with
 * its socket address (and, when it already connected to the container, the
 * connected socket itself).  The backend keeps one connection to the
 * coordinator for its whole session: when it goes away, so do the
 * session's containers.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		include/plcoordinator.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PLCOORDINATOR_H
#define PLCOORDINATOR_H

#include "plcoordinator_abi.h"

/* PL/Container's client version, sent in the PING handshake. */
#define PLCOORD_PLC_VERSION "2.4.0"

/*
 * Shared state.  Written only by the coordinator's main thread under the
 * plcoordinator LWLock (exclusive); read by backends under the same lock
 * (shared).  Plain C types only.
 */
typedef struct PlcoordShared
{
	int32_t		state;			/* PlcoordState */
	int32_t		worker_pid;
	int64_t		started_at_us;	/* Unix epoch microseconds, 0 = never */
	int64_t		generation;		/* bumped at every worker start */
	char		address[PLCOORD_ADDRESS_LEN];	/* "unix:<path>" */
	char		config_file[PLCOORD_PATH_LEN];
	PlcoordSnapshot snapshot;	/* its pointers are unused here */
	char		status_json[PLCOORD_STATUS_JSON_LEN];	/* length in
															 * snapshot */
	int32_t		nruntime_rows;	/* rows used in runtimes[] */
	PlcoordRuntimeRow runtimes[PLCOORD_MAX_RUNTIMES];
	int32_t		max_rows;		/* = max_container_number */
	PlcoordContainerRow rows[];
} PlcoordShared;

/* Result of plcoord_acquire(). */
typedef struct PlcoordContainer
{
	char		container_id[PLCOORD_CONTAINER_ID_LEN];
	char		address[PLCOORD_ADDRESS_LEN];
	bool		reused;			/* this session had it already */
	bool		prewarmed;		/* came from the prewarm pool */
	uint32_t	wait_ms;		/* time spent in the coordinator */
	int			fd;				/* connected, pinged socket, or -1 */
	char		client_version[PLCOORD_NAME_LEN];	/* when fd >= 0 */
} PlcoordContainer;

/* Flags for plcoord_acquire(). */
#define PLCOORD_ACQUIRE_WANT_FD	0x1

/* Backend API (bgworker/client.c).  All raise ERROR on failure. */
extern void plcoord_acquire(const char *runtime_id, uint32_t flags,
							PlcoordContainer *out);
extern uint32_t plcoord_release(const char *runtime_id);
extern uint32_t plcoord_release_all(void);
extern int	plcoord_connect_container(const char *address, int timeout_ms);
extern void plcoord_ping_fd(int fd, int timeout_ms, char *version_out,
							size_t version_len);
extern int	plcoord_held_fd(const char *runtime_id, const char *container_id);
extern void plcoord_adopt_container_fd(const char *runtime_id,
									   const char *container_id, int fd);
extern void plcoord_forget_container(const char *runtime_id);
extern void plcoord_check_runtime_access(const char *runtime_id);
extern char *plcoord_reload(uint32_t *nruntimes);
extern void plcoord_stats_reset(void);
extern void plcoord_debug_panic(void);

/* Shared memory (bgworker/shmem.c). */
extern PlcoordShared *plcoord_shared;
extern void plcoord_shmem_init(void);
extern void plcoord_shmem_lock(bool exclusive);
extern void plcoord_shmem_unlock(void);
extern void plcoord_state_broadcast(void);
extern bool plcoord_wait_for_state(int32_t state, long timeout_ms);

/* GUCs (bgworker/plcoordinator.c). */
extern int	plcoord_max_container_number;
extern int	plcoord_check_loop_interval;
extern int	plcoord_acquire_timeout;
extern int	plcoord_max_parallel_creates;
extern int	plcoord_shutdown_timeout;
extern char *plcoord_config_file;
extern char *plcoord_docker_host;
extern char *plcoord_socket_dir;
extern char *plcoord_golib_path;
extern bool plcoord_enable_test_hooks;
extern bool plcoord_container_hardening;

extern void plcoord_fill_settings(PlcoordSettings *out);

#endif							/* PLCOORDINATOR_H */
