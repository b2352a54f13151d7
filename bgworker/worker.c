/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The coordinator background worker: loads the Go library and runs its
 *		main loop on this process's main thread.
 *
 * A Go runtime inside a PostgreSQL process needs care; each step below
 * prevents a crash or hang that was reproduced (see ARCHITECTURE.md §3):
 *
 *	- SIGTERM, SIGHUP and SIGUSR1 get flag-only handlers installed with
 *	  SA_ONSTACK (pqsignal() does not set it, and a handler without it that
 *	  runs on a Go stack corrupts it).  They write an eventfd that Go reads.
 *	- The library is dlopen()ed with every signal blocked, so Go's threads
 *	  inherit a full mask and never take PostgreSQL's signals; afterwards
 *	  the first call into Go changes this thread's mask, so PostgreSQL's
 *	  mask is applied again.
 *	- Go calls back only on this thread; the callbacks check that, and none
 *	  lets an ERROR longjmp through Go frames.
 *	- The worker exits with 1 (restart me) in every case; a death by signal
 *	  or a code above 1 would make the postmaster restart the whole cluster.
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		bgworker/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/procsignal.h"
#include "storage/sinval.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "plcoordinator.h"

PGDLLEXPORT void plcoord_main(Datum main_arg) pg_attribute_noreturn();

static volatile sig_atomic_t got_sigterm = false;
static volatile sig_atomic_t got_sighup = false;
static int	plcoord_signal_fd = -1;
static pthread_t plcoord_main_thread;

/*
 * plcoord_wake
 *		Makes the eventfd readable.  Async-signal-safe.
 */
static void
plcoord_wake(void)
{
	uint64_t	one = 1;
	int			save_errno = errno;

	if (write(plcoord_signal_fd, &one, sizeof(one)) < 0)
	{
		/* The counter is already non-zero: Go will wake anyway. */
	}
	errno = save_errno;
}

static void
plcoord_sigterm(int signo)
{
	got_sigterm = true;
	plcoord_wake();
}

static void
plcoord_sighup(int signo)
{
	got_sighup = true;
	plcoord_wake();
}

/*
 * plcoord_sigusr1
 *		Procsignal interrupts (barriers, sinval catch-up) are recorded by
 *		PostgreSQL's handler and processed by take_signals on the main
 *		thread.  Without this, DROP DATABASE would wait for us forever.
 */
static void
plcoord_sigusr1(int signo)
{
	int			save_errno = errno;

	procsignal_sigusr1_handler(signo);
	plcoord_wake();
	errno = save_errno;
}

/*
 * plcoord_install_handler
 *		sigaction() with SA_ONSTACK: the handler may run while this thread
 *		is on a Go stack, and Go provides the alternate signal stack.
 */
static void
plcoord_install_handler(int signo, void (*handler) (int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigfillset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_ONSTACK;
	if (sigaction(signo, &sa, NULL) != 0)
		elog(FATAL, "plcoordinator: sigaction(%d) failed: %m", signo);
}

static bool
plcoord_on_main_thread(void)
{
	return pthread_equal(pthread_self(), plcoord_main_thread);
}

/*
 * Callbacks for Go.  Each returns -1 when called off the main thread or
 * when PostgreSQL raised an error, which is caught here.
 */
static int
plcoord_cb_log(int level, const char *message)
{
	volatile int rc = 0;
	volatile int elevel;

	if (!plcoord_on_main_thread())
		return -1;
	elevel = level == PLCOORD_LOG_WARNING ? WARNING :
		level == PLCOORD_LOG_DEBUG ? DEBUG1 : LOG;

	PG_TRY();
	{
		ereport(elevel, (errmsg_internal("plcoordinator: %s", message)));
	}
	PG_CATCH();
	{
		FlushErrorState();
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

static uint32_t
plcoord_cb_take_signals(void)
{
	volatile uint32_t bits = 0;

	if (!plcoord_on_main_thread())
		return 0;

	if (got_sigterm)
		bits |= PLCOORD_SIG_TERM;
	if (got_sighup)
	{
		got_sighup = false;
		bits |= PLCOORD_SIG_HUP;
	}

	PG_TRY();
	{
		if (ProcSignalBarrierPending)
			ProcessProcSignalBarrier();
		if (catchupInterruptPending)
			ProcessCatchupInterrupt();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
	return bits;
}

/*
 * plcoord_publish_config_file
 *		Shows the resolved configuration file path in plcoordinator.status.
 */
static void
plcoord_publish_config_file(const PlcoordSettings *settings)
{
	plcoord_shmem_lock(true);
	strlcpy(plcoord_shared->config_file, settings->config_file,
			sizeof(plcoord_shared->config_file));
	plcoord_shmem_unlock();
}

static int
plcoord_cb_reload_settings(PlcoordSettings *out)
{
	volatile int rc = 0;

	if (!plcoord_on_main_thread())
		return -1;

	PG_TRY();
	{
		ProcessConfigFile(PGC_SIGHUP);
		plcoord_fill_settings(out);
		plcoord_publish_config_file(out);
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

static int
plcoord_cb_set_state(int32_t state, const char *address)
{
	if (!plcoord_on_main_thread())
		return -1;

	plcoord_shmem_lock(true);
	plcoord_shared->state = state;
	plcoord_shared->worker_pid = MyProcPid;
	if (address != NULL)
		strlcpy(plcoord_shared->address, address, sizeof(plcoord_shared->address));
	if (state == PLCOORD_STATE_READY)
		plcoord_shared->started_at_us = (int64_t) time(NULL) * 1000000;
	plcoord_shmem_unlock();
	plcoord_state_broadcast();
	return 0;
}

static int
plcoord_cb_publish(const PlcoordSnapshot *snapshot)
{
	int32_t		n;

	if (!plcoord_on_main_thread())
		return -1;

	n = Min(snapshot->nrows, plcoord_shared->max_rows);
	plcoord_shmem_lock(true);
	plcoord_shared->snapshot = *snapshot;
	plcoord_shared->snapshot.rows = NULL;
	plcoord_shared->snapshot.runtimes = NULL;
	plcoord_shared->snapshot.status_json = NULL;
	plcoord_shared->snapshot.status_json_len = Min(Max(snapshot->status_json_len, 0),
												   PLCOORD_STATUS_JSON_LEN);
	if (plcoord_shared->snapshot.status_json_len > 0)
		memcpy(plcoord_shared->status_json, snapshot->status_json,
			   plcoord_shared->snapshot.status_json_len);
	plcoord_shared->snapshot.nrows = n;
	plcoord_shared->nruntime_rows = Min(snapshot->nruntimes, PLCOORD_MAX_RUNTIMES);
	if (n > 0)
		memcpy(plcoord_shared->rows, snapshot->rows,
			   n * sizeof(PlcoordContainerRow));
	if (plcoord_shared->nruntime_rows > 0)
		memcpy(plcoord_shared->runtimes, snapshot->runtimes,
			   plcoord_shared->nruntime_rows * sizeof(PlcoordRuntimeRow));
	plcoord_shmem_unlock();
	return 0;
}

static const PlcoordCallbacks plcoord_callbacks = {
	.log = plcoord_cb_log,
	.take_signals = plcoord_cb_take_signals,
	.reload_settings = plcoord_cb_reload_settings,
	.set_state = plcoord_cb_set_state,
	.publish = plcoord_cb_publish,
};

/*
 * plcoord_before_shmem_exit
 *		Marks the coordinator as gone, so backends fail fast instead of
 *		connecting to a dead socket.
 */
static void
plcoord_before_shmem_exit(int code, Datum arg)
{
	plcoord_shmem_lock(true);
	plcoord_shared->state = PLCOORD_STATE_UNINITIALIZED;
	plcoord_shared->worker_pid = 0;
	plcoord_shared->address[0] = '\0';
	plcoord_shared->snapshot.nrows = 0;
	plcoord_shared->snapshot.status_json_len = 0;
	plcoord_shared->nruntime_rows = 0;
	plcoord_shmem_unlock();
	plcoord_state_broadcast();
}

/*
 * plcoord_load_golib
 *		dlopen()s the Go library with every signal blocked and returns its
 *		entry point.  FATAL (exit 1, worker restart) if it cannot be used.
 */
static PlcoordMainFn
plcoord_load_golib(void)
{
	char		path[MAXPGPATH];
	sigset_t	all,
				saved;
	void	   *handle;
	PlcoordAbiVersionFn abi_version;
	PlcoordMainFn main_fn;
	int32_t		abi;

	if (strncmp(plcoord_golib_path, "$libdir", 7) == 0)
		snprintf(path, sizeof(path), "%s%s", pkglib_path, plcoord_golib_path + 7);
	else
		strlcpy(path, plcoord_golib_path, sizeof(path));

	/* One Go runtime per process: refuse if another is mapped already. */
	if (dlsym(RTLD_DEFAULT, "_cgo_init") != NULL)
		ereport(FATAL,
				(errmsg("plcoordinator: a Go runtime is already loaded in this process"),
				 errhint("Remove other Go-based libraries from \"shared_preload_libraries\".")));

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (handle == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("plcoordinator: could not load Go library \"%s\": %s", path, dlerror()),
				 errhint("Run \"make install\" or check \"plcoordinator.golib_path\".")));

	/* Never dlclose(): a Go library cannot be unloaded. */
	abi_version = (PlcoordAbiVersionFn) dlsym(handle, "PlcoordAbiVersion");
	main_fn = (PlcoordMainFn) dlsym(handle, "PlcoordMain");
	if (abi_version == NULL || main_fn == NULL)
		ereport(FATAL,
				(errmsg("plcoordinator: \"%s\" lacks the PlcoordAbiVersion/PlcoordMain entry points", path)));

	abi = abi_version();
	/* The first call into Go changed this thread's mask: restore ours. */
	pthread_sigmask(SIG_SETMASK, &UnBlockSig, NULL);
	if (abi != PLCOORD_ABI_VERSION)
		ereport(FATAL,
				(errmsg("plcoordinator: Go library \"%s\" has ABI version %d, expected %d",
						path, abi, PLCOORD_ABI_VERSION),
				 errhint("Install plcoordinator.so and plcoordinator_go.so from the same build.")));
	return main_fn;
}

/*
 * plcoord_main
 *		Entry point of the coordinator worker.
 */
void
plcoord_main(Datum main_arg)
{
	PlcoordStartArgs args;
	PlcoordMainFn go_main;
	int32_t		rc;

	plcoord_main_thread = pthread_self();

	plcoord_signal_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (plcoord_signal_fd < 0)
		ereport(FATAL, (errmsg("plcoordinator: eventfd failed: %m")));
	plcoord_install_handler(SIGTERM, plcoord_sigterm);
	plcoord_install_handler(SIGHUP, plcoord_sighup);
	plcoord_install_handler(SIGUSR1, plcoord_sigusr1);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("plcoordinator");

	before_shmem_exit(plcoord_before_shmem_exit, (Datum) 0);
	plcoord_shmem_lock(true);
	plcoord_shared->state = PLCOORD_STATE_STARTING;
	plcoord_shared->worker_pid = MyProcPid;
	plcoord_shared->generation++;
	plcoord_shmem_unlock();
	plcoord_state_broadcast();

	go_main = plcoord_load_golib();

	memset(&args, 0, sizeof(args));
	plcoord_fill_settings(&args.settings);
	plcoord_publish_config_file(&args.settings);
	args.signal_fd = plcoord_signal_fd;
	args.postmaster_fd = dup(postmaster_alive_fds[POSTMASTER_FD_WATCH]);
	args.worker_pid = MyProcPid;
	args.callbacks = &plcoord_callbacks;
	if (args.postmaster_fd < 0)
		ereport(FATAL, (errmsg("plcoordinator: dup of the postmaster watch fd failed: %m")));

	ereport(LOG, (errmsg("plcoordinator: coordinator starting, socket directory \"%s\"",
						 args.settings.socket_dir)));
	rc = go_main(&args);

	/*
	 * Go returns 1 for every stop of ours, SIGTERM included, so that the
	 * worker is restarted as PostgreSQL's own workers are (the postmaster
	 * restarts nothing while it shuts down); 0 unregisters it for good.
	 */
	ereport(LOG, (errmsg("plcoordinator: coordinator stopped (exit code %d)",
						 rc == 0 ? 0 : 1)));
	proc_exit(rc == 0 ? 0 : 1);
}
