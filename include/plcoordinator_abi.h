/*-------------------------------------------------------------------------
 *
 * plcoordinator_abi.h
 *		The contract between the C shim and the Go library loaded in the
 *		coordinator worker.
 *
 * The worker dlopen()s the Go library, checks PlcoordAbiVersion() and calls
 * PlcoordMain() on the PostgreSQL main thread.  PlcoordMain() runs the Go
 * main loop until shutdown and is the only Go code that calls back into C,
 * through the callback table below.  Every struct here has a fixed layout
 * of plain C types: this header must not include any PostgreSQL header, so
 * that cgo can compile it on its own.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		include/plcoordinator_abi.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PLCOORDINATOR_ABI_H
#define PLCOORDINATOR_ABI_H

#include <stdbool.h>
#include <stdint.h>

/* Bump whenever a struct or callback below changes. */
#define PLCOORD_ABI_VERSION 2

/* Coordinator states, published in shared memory. */
typedef enum PlcoordState
{
	PLCOORD_STATE_UNINITIALIZED = 0,
	PLCOORD_STATE_STARTING = 1,
	PLCOORD_STATE_READY = 2,
	PLCOORD_STATE_STOPPING = 3
} PlcoordState;

/* Bits returned by the take_signals callback. */
#define PLCOORD_SIG_TERM	0x1
#define PLCOORD_SIG_HUP		0x2

/* Log levels understood by the log callback. */
#define PLCOORD_LOG_DEBUG	0
#define PLCOORD_LOG_INFO	1		/* ereport(LOG) */
#define PLCOORD_LOG_WARNING	2

/* Sizes of the fixed text fields. */
#define PLCOORD_PATH_LEN		1024
#define PLCOORD_ADDRESS_LEN		128		/* "unix:" + a socket path (< 108) */
#define PLCOORD_NAME_LEN		64		/* runtime id, role, database */
#define PLCOORD_CONTAINER_ID_LEN 65		/* 64 hex digits + NUL */
#define PLCOORD_STATE_NAME_LEN	16
#define PLCOORD_ERROR_LEN		1024
#define PLCOORD_STATUS_JSON_LEN	65536	/* runtimes and requesters, as JSON */

/*
 * Settings the worker passes to Go at start and again after each SIGHUP.
 * Strings are NUL-terminated; an empty config_file has already been
 * resolved to the data directory by C.
 */
typedef struct PlcoordSettings
{
	int32_t		max_container_number;	/* postmaster */
	int32_t		check_loop_interval_s;
	int32_t		acquire_timeout_ms;
	int32_t		max_parallel_creates;
	int32_t		shutdown_timeout_ms;
	bool		enable_test_hooks;		/* postmaster */
	bool		container_hardening;
	char		config_file[PLCOORD_PATH_LEN];
	char		docker_host[PLCOORD_PATH_LEN];
	char		socket_dir[PLCOORD_PATH_LEN];	/* postmaster */
	char		data_dir[PLCOORD_PATH_LEN];
	char		instance[PLCOORD_NAME_LEN];		/* system identifier + port */
	int32_t		segindex;		/* Greenplum content id, -1 on PostgreSQL */
} PlcoordSettings;

/* One row of the container table (plcoordinator.containers). */
typedef struct PlcoordContainerRow
{
	char		container_id[PLCOORD_CONTAINER_ID_LEN];
	char		runtime_id[PLCOORD_NAME_LEN];
	char		owner[PLCOORD_NAME_LEN];
	char		database[PLCOORD_NAME_LEN];
	char		state[PLCOORD_STATE_NAME_LEN];	/* starting, ready, in use, idle,
												 * prewarmed, stopping */
	char		address[PLCOORD_ADDRESS_LEN];
	int32_t		backend_pid;	/* 0 when not bound to a session */
	int32_t		ready_ms;		/* create -> ready, -1 while starting */
	int64_t		created_at_us;	/* Unix epoch microseconds */
	int64_t		last_used_us;
	int64_t		uses;
	int64_t		memory_kb;		/* -1 if not known yet */
	int32_t		exit_code;		/* -1 while running */
	bool		oom_killed;
} PlcoordContainerRow;

/*
 * What backends need to check access to a runtime before asking for it:
 * runtimes with roles, network or devices are limited to members of the
 * listed roles (superusers pass).
 */
#define PLCOORD_MAX_RUNTIMES	256
#define PLCOORD_ROLES_LEN		1024
typedef struct PlcoordRuntimeRow
{
	char		runtime_id[PLCOORD_NAME_LEN];
	bool		user_control;
	char		roles[PLCOORD_ROLES_LEN];	/* comma-separated, may be empty */
} PlcoordRuntimeRow;

/* Counters since start (plcoordinator.stats). */
typedef struct PlcoordStats
{
	int64_t		requests;
	int64_t		warm_hits;
	int64_t		prewarm_hits;
	int64_t		cold_starts;
	int64_t		start_failures;
	int64_t		docker_errors;		/* all kinds: */
	int64_t		docker_unreachable;
	int64_t		docker_transient;
	int64_t		docker_not_found;
	int64_t		docker_other;
	int64_t		releases;
	int64_t		sessions_reaped;
	int64_t		orphans_removed;
	int64_t		queue_waits;
	int64_t		queue_timeouts;
	double		acquire_p50_ms;
	double		acquire_p95_ms;
	double		acquire_p99_ms;
	double		create_p50_ms;
	double		create_p95_ms;
	double		create_p99_ms;
	double		start_p50_ms;
	double		start_p95_ms;
	double		start_p99_ms;
	double		ready_p50_ms;
	double		ready_p95_ms;
	double		ready_p99_ms;
} PlcoordStats;

/* What Go publishes to shared memory on every change. */
typedef struct PlcoordSnapshot
{
	const PlcoordContainerRow *rows;
	int32_t		nrows;
	const PlcoordRuntimeRow *runtimes;
	int32_t		nruntimes;		/* at most PLCOORD_MAX_RUNTIMES published */
	bool		docker_reachable;
	int64_t		config_loaded_at_us;	/* 0 = never */
	int64_t		config_error_at_us;		/* 0 = no error */
	char		config_error[PLCOORD_ERROR_LEN];
	PlcoordStats stats;
	/* The runtimes and requesters views' document (not NUL-terminated). */
	const char *status_json;
	int32_t		status_json_len;	/* at most PLCOORD_STATUS_JSON_LEN */
} PlcoordSnapshot;

/*
 * Callbacks into C.  Each refuses to run off the PostgreSQL main thread and
 * returns -1 in that case.  None of them lets an ERROR escape into Go.
 */
typedef struct PlcoordCallbacks
{
	int			(*log) (int level, const char *message);
	/* Returns PLCOORD_SIG_* bits received since the last call. */
	uint32_t	(*take_signals) (void);
	/* Re-reads postgresql.conf (SIGHUP) and fills *out. */
	int			(*reload_settings) (PlcoordSettings *out);
	int			(*set_state) (int32_t state, const char *address);
	int			(*publish) (const PlcoordSnapshot *snapshot);
} PlcoordCallbacks;

/* Everything PlcoordMain needs. */
typedef struct PlcoordStartArgs
{
	PlcoordSettings settings;
	int32_t		signal_fd;		/* eventfd, readable after any signal */
	int32_t		postmaster_fd;	/* dup of the postmaster-death watch fd */
	int32_t		worker_pid;
	const PlcoordCallbacks *callbacks;
} PlcoordStartArgs;

/* Exported by the Go library. */
typedef int32_t (*PlcoordAbiVersionFn) (void);
/* Returns 0 to stop for good, 1 to be restarted. */
typedef int32_t (*PlcoordMainFn) (const PlcoordStartArgs *args);

#endif							/* PLCOORDINATOR_ABI_H */
