/*-------------------------------------------------------------------------
 *
 * plcoordinator.c
 *		Module entry: _PG_init defines the GUCs, requests shared memory and
 *		registers the coordinator background worker.
 *
 * This file, like everything loaded by shared_preload_libraries, never
 * links or loads Go: a Go runtime in the postmaster makes every forked
 * child hang.  Only the worker (worker.c) dlopen()s the Go library.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		bgworker/plcoordinator.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xlog.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"

#include "compat.h"
#include "plcoordinator.h"

PG_MODULE_MAGIC;

int			plcoord_max_container_number = 100;
int			plcoord_check_loop_interval = 5;
int			plcoord_acquire_timeout = 30000;
int			plcoord_max_parallel_creates = 4;
int			plcoord_shutdown_timeout = 10000;
char	   *plcoord_config_file = NULL;
char	   *plcoord_docker_host = NULL;
char	   *plcoord_socket_dir = NULL;
char	   *plcoord_golib_path = NULL;
bool		plcoord_enable_test_hooks = false;
bool		plcoord_container_hardening = true;

void		_PG_init(void);

/*
 * _PG_init
 *		Defines the GUCs and registers the worker.  Refuses to run anywhere
 *		but in shared_preload_libraries: the worker and its shared memory
 *		can only be set up by the postmaster.
 */
void
_PG_init(void)
{
	BackgroundWorker worker;

	if (IsBinaryUpgrade)
		return;

	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("plcoordinator must be loaded via \"shared_preload_libraries\""),
				 errhint("Add plcoordinator to \"shared_preload_libraries\" in postgresql.conf and restart the server "
						 "(on Greenplum: gpconfig -c shared_preload_libraries -v plcoordinator; gpstop -ra).")));

	DefineCustomIntVariable("plcoordinator.check_loop_interval",
							"Seconds between sweeps for dead sessions and exited containers.",
							"Session ends are noticed at once through the closed connection; the sweep catches the rest.",
							&plcoord_check_loop_interval,
							5, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("plcoordinator.acquire_timeout",
							"How long an acquire may wait for a free container slot or a container start.",
							"Requests beyond plcoordinator.max_container_number wait in arrival order up to this long.",
							&plcoord_acquire_timeout,
							30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("plcoordinator.max_parallel_creates",
							"Maximum number of containers being created at the same time.",
							NULL,
							&plcoord_max_parallel_creates,
							4, 1, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("plcoordinator.shutdown_timeout",
							"How long the coordinator may take to remove its containers at shutdown.",
							NULL,
							&plcoord_shutdown_timeout,
							10000, 0, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("plcoordinator.config_file",
							   "Path of the PL/Container runtime configuration file.",
							   "Empty means plcontainer_configuration.xml in the data directory.",
							   &plcoord_config_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("plcoordinator.docker_host",
							   "Docker Engine API endpoint of the default backend.",
							   "unix:///path for a local socket, tcp://host:port for a remote engine.",
							   &plcoord_docker_host,
							   "unix:///var/run/docker.sock",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("plcoordinator.container_hardening",
							 "Drops capabilities and sets limits on the containers the coordinator creates.",
							 "Keeps only what PL/Container's clients need: CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID.",
							 &plcoord_container_hardening,
							 true,
							 PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							 NULL, NULL, NULL);

	/* PGC_POSTMASTER settings can only be defined while preloading. */
	DefineCustomIntVariable("plcoordinator.max_container_number",
							"Maximum number of containers of this instance, prewarmed ones included.",
							NULL,
							&plcoord_max_container_number,
							100, 1, 10000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("plcoordinator.socket_dir",
							   "Directory of the coordinator socket and of the per-container socket directories.",
							   "Empty means /tmp/.plcoordinator.<port>.  The path must stay short: container socket paths are limited to 107 bytes.",
							   &plcoord_socket_dir,
							   "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("plcoordinator.golib_path",
							   "Path of the Go library the coordinator worker loads.",
							   "A leading $libdir is replaced by the package library directory.",
							   &plcoord_golib_path,
							   "$libdir/plcoordinator_go.so",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("plcoordinator.enable_test_hooks",
							 "Enables test-only requests such as plcoordinator.debug_panic().",
							 "Never enable this in production.",
							 &plcoord_enable_test_hooks,
							 false,
							 PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("plcoordinator");

	plcoord_shmem_init();

	/*
	 * The worker connects to no database but joins the proc array, so that
	 * it shows in pg_stat_activity and pg_terminate_backend() reaches it.
	 */
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "plcoordinator");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "plcoord_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "plcoordinator");
	snprintf(worker.bgw_type, BGW_MAXLEN, "plcoordinator");
	RegisterBackgroundWorker(&worker);
}

/*
 * plcoord_fill_settings
 *		Copies the current GUC values into the struct handed to Go.
 */
void
plcoord_fill_settings(PlcoordSettings *out)
{
	memset(out, 0, sizeof(*out));
	out->max_container_number = plcoord_max_container_number;
	out->check_loop_interval_s = plcoord_check_loop_interval;
	out->acquire_timeout_ms = plcoord_acquire_timeout;
	out->max_parallel_creates = plcoord_max_parallel_creates;
	out->shutdown_timeout_ms = plcoord_shutdown_timeout;
	out->enable_test_hooks = plcoord_enable_test_hooks;
	out->container_hardening = plcoord_container_hardening;

	if (plcoord_config_file != NULL && plcoord_config_file[0] != '\0')
	{
		if (is_absolute_path(plcoord_config_file))
			strlcpy(out->config_file, plcoord_config_file, sizeof(out->config_file));
		else
			snprintf(out->config_file, sizeof(out->config_file), "%s/%s",
					 DataDir, plcoord_config_file);
	}
	else
		snprintf(out->config_file, sizeof(out->config_file),
				 "%s/plcontainer_configuration.xml", DataDir);

	strlcpy(out->docker_host, plcoord_docker_host ? plcoord_docker_host : "",
			sizeof(out->docker_host));
	if (plcoord_socket_dir != NULL && plcoord_socket_dir[0] != '\0')
		strlcpy(out->socket_dir, plcoord_socket_dir, sizeof(out->socket_dir));
	else
		snprintf(out->socket_dir, sizeof(out->socket_dir),
				 "/tmp/.plcoordinator.%d", PostPortNumber);
	strlcpy(out->data_dir, DataDir, sizeof(out->data_dir));
	snprintf(out->instance, sizeof(out->instance), UINT64_FORMAT "-%d",
			 GetSystemIdentifier(), PostPortNumber);
	out->segindex = PLCOORD_SEGINDEX;
}
