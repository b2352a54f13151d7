/*-------------------------------------------------------------------------
 *
 * functions.c
 *		SQL-callable functions of schema plcoordinator.
 *
 * The views over shared memory (status, containers, stats) never talk to
 * the coordinator or to Docker: they copy a consistent snapshot under the
 * shared lock.  acquire/release/ping go through the session's coordinator
 * connection (client.c).
 *
 * Copyright (c) 2026, plcoordinator authors
 *
 * IDENTIFICATION
 *		bgworker/functions.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "plcoordinator.h"

PG_FUNCTION_INFO_V1(plcoordinator_status);
PG_FUNCTION_INFO_V1(plcoordinator_wait_until_ready);
PG_FUNCTION_INFO_V1(plcoordinator_acquire);
PG_FUNCTION_INFO_V1(plcoordinator_release);
PG_FUNCTION_INFO_V1(plcoordinator_release_all);
PG_FUNCTION_INFO_V1(plcoordinator_ping);
PG_FUNCTION_INFO_V1(plcoordinator_reload_config);
PG_FUNCTION_INFO_V1(plcoordinator_status_json);
PG_FUNCTION_INFO_V1(plcoordinator_containers);
PG_FUNCTION_INFO_V1(plcoordinator_stats);
PG_FUNCTION_INFO_V1(plcoordinator_stats_reset);
PG_FUNCTION_INFO_V1(plcoordinator_debug_panic);

/* How long ping() waits for the container's socket and its answer. */
#define PLCOORD_PING_TIMEOUT_MS 10000

static const char *
plcoord_state_name(int32_t state)
{
	switch (state)
	{
		case PLCOORD_STATE_STARTING:
			return "starting";
		case PLCOORD_STATE_READY:
			return "ready";
		case PLCOORD_STATE_STOPPING:
			return "stopping";
		default:
			return "uninitialized";
	}
}

/* Unix-epoch microseconds to timestamptz; 0 means NULL. */
static Datum
plcoord_timestamp(int64_t unix_us, bool *isnull)
{
	*isnull = (unix_us == 0);
	return TimestampTzGetDatum((TimestampTz) (unix_us -
											  ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
											   SECS_PER_DAY * USECS_PER_SEC)));
}

static Datum
plcoord_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

static TupleDesc
plcoord_result_desc(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	return BlessTupleDesc(tupdesc);
}

/*
 * plcoordinator_status
 *		One row: the coordinator's state and configuration status.
 */
Datum
plcoordinator_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = plcoord_result_desc(fcinfo);
	Datum		values[12];
	bool		nulls[12] = {0};
	PlcoordShared s;

	plcoord_shmem_lock(false);
	memcpy(&s, plcoord_shared, offsetof(PlcoordShared, rows));
	plcoord_shmem_unlock();

	values[0] = CStringGetTextDatum(plcoord_state_name(s.state));
	values[1] = Int32GetDatum(s.worker_pid);
	nulls[1] = (s.worker_pid == 0);
	values[2] = plcoord_text_or_null(s.address, &nulls[2]);
	values[3] = plcoord_timestamp(s.started_at_us, &nulls[3]);
	values[4] = Int64GetDatum(s.generation);
	values[5] = plcoord_text_or_null(s.config_file, &nulls[5]);
	values[6] = plcoord_timestamp(s.snapshot.config_loaded_at_us, &nulls[6]);
	values[7] = plcoord_text_or_null(s.snapshot.config_error, &nulls[7]);
	values[8] = plcoord_timestamp(s.snapshot.config_error_at_us, &nulls[8]);
	values[9] = BoolGetDatum(s.snapshot.docker_reachable);
	nulls[9] = (s.state != PLCOORD_STATE_READY);
	values[10] = Int32GetDatum(s.snapshot.nrows);
	values[11] = Int32GetDatum(s.snapshot.nruntimes);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * plcoordinator_wait_until_ready
 *		Returns true as soon as the coordinator is ready, false after
 *		timeout_ms.
 */
Datum
plcoordinator_wait_until_ready(PG_FUNCTION_ARGS)
{
	int32		timeout_ms = PG_GETARG_INT32(0);

	if (timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must not be negative")));
	PG_RETURN_BOOL(plcoord_wait_for_state(PLCOORD_STATE_READY, timeout_ms));
}

static char *
plcoord_runtime_arg(FunctionCallInfo fcinfo, int n)
{
	char	   *runtime_id;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("runtime_id must not be null")));
	runtime_id = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (runtime_id[0] == '\0' || strlen(runtime_id) >= PLCOORD_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid runtime id \"%s\"", runtime_id),
				 errdetail("A runtime id has 1 to %d bytes.", PLCOORD_NAME_LEN - 1)));
	return runtime_id;
}

/*
 * plcoordinator_acquire
 *		acquire(runtime_id, handoff): the session's container of the runtime.
 *		With handoff the coordinator connects to a new container, completes
 *		the PING handshake and passes the connected socket to this session.
 */
Datum
plcoordinator_acquire(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = plcoord_result_desc(fcinfo);
	char	   *runtime_id = plcoord_runtime_arg(fcinfo, 0);
	bool		handoff = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	PlcoordContainer c;
	Datum		values[6];
	bool		nulls[6] = {0};

	plcoord_acquire(runtime_id, handoff ? PLCOORD_ACQUIRE_WANT_FD : 0, &c);

	values[0] = CStringGetTextDatum(c.container_id);
	values[1] = CStringGetTextDatum(c.address);
	values[2] = BoolGetDatum(c.reused);
	values[3] = BoolGetDatum(c.prewarmed);
	values[4] = Int32GetDatum((int32) c.wait_ms);
	values[5] = BoolGetDatum(c.fd >= 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
plcoordinator_release(PG_FUNCTION_ARGS)
{
	char	   *runtime_id = plcoord_runtime_arg(fcinfo, 0);

	PG_RETURN_INT32((int32) plcoord_release(runtime_id));
}

Datum
plcoordinator_release_all(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32((int32) plcoord_release_all());
}

/*
 * plcoordinator_ping
 *		acquire + PL/Container's PING handshake with the container, as a
 *		backend does before its first call.  Returns the client's version
 *		and the round trip of the PING.
 */
Datum
plcoordinator_ping(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = plcoord_result_desc(fcinfo);
	char	   *runtime_id = plcoord_runtime_arg(fcinfo, 0);
	bool		handoff = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	PlcoordContainer c;
	char		version[PLCOORD_NAME_LEN];
	instr_time	start,
				elapsed;
	int			fd;
	Datum		values[5];
	bool		nulls[5] = {0};

	plcoord_acquire(runtime_id, handoff ? PLCOORD_ACQUIRE_WANT_FD : 0, &c);

	fd = c.fd;
	if (fd < 0)
	{
		fd = plcoord_connect_container(c.address, PLCOORD_PING_TIMEOUT_MS);
		plcoord_adopt_container_fd(runtime_id, c.container_id, fd);
	}

	INSTR_TIME_SET_CURRENT(start);
	PG_TRY();
	{
		plcoord_ping_fd(fd, PLCOORD_PING_TIMEOUT_MS, version, sizeof(version));
	}
	PG_CATCH();
	{
		/* A broken container connection is of no further use. */
		plcoord_forget_container(runtime_id);
		PG_RE_THROW();
	}
	PG_END_TRY();
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);

	values[0] = CStringGetTextDatum(c.container_id);
	values[1] = CStringGetTextDatum(version);
	values[2] = Float8GetDatum(INSTR_TIME_GET_MILLISEC(elapsed));
	values[3] = BoolGetDatum(c.reused);
	values[4] = BoolGetDatum(c.prewarmed);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
plcoordinator_reload_config(PG_FUNCTION_ARGS)
{
	uint32_t	nruntimes;

	PG_RETURN_TEXT_P(cstring_to_text(plcoord_reload(&nruntimes)));
}

/*
 * plcoordinator_status_json
 *		The document behind the runtimes and requesters views, as the
 *		coordinator last published it; empty lists while it is down.
 */
Datum
plcoordinator_status_json(PG_FUNCTION_ARGS)
{
	char	   *doc;
	int32		len;

	plcoord_shmem_lock(false);
	len = plcoord_shared->snapshot.status_json_len;
	doc = pnstrdup(plcoord_shared->status_json, len);
	plcoord_shmem_unlock();
	if (len == 0)
		doc = "{\"runtimes\": [], \"requesters\": []}";
	PG_RETURN_TEXT_P(cstring_to_text(doc));
}

Datum
plcoordinator_stats_reset(PG_FUNCTION_ARGS)
{
	plcoord_stats_reset();
	PG_RETURN_VOID();
}

Datum
plcoordinator_debug_panic(PG_FUNCTION_ARGS)
{
	plcoord_debug_panic();
	PG_RETURN_VOID();
}

/*
 * plcoordinator_containers
 *		The container table.  Like PL/Container, a role that is not a
 *		superuser sees only the containers it owns.
 */
Datum
plcoordinator_containers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PlcoordContainerRow *rows;
	int32_t		n,
				i;
	bool		all = superuser();
	char	   *me = GetUserNameFromId(GetUserId(), false);

	InitMaterializedSRF(fcinfo, 0);

	/* Copy under the lock, build tuples after it. */
	plcoord_shmem_lock(false);
	n = plcoord_shared->snapshot.nrows;
	rows = palloc(sizeof(PlcoordContainerRow) * Max(n, 1));
	memcpy(rows, plcoord_shared->rows, sizeof(PlcoordContainerRow) * n);
	plcoord_shmem_unlock();

	for (i = 0; i < n; i++)
	{
		PlcoordContainerRow *r = &rows[i];
		Datum		values[14];
		bool		nulls[14] = {0};

		if (!all && strcmp(r->owner, me) != 0)
			continue;

		values[0] = plcoord_text_or_null(r->container_id, &nulls[0]);
		values[1] = CStringGetTextDatum(r->runtime_id);
		values[2] = Int32GetDatum(r->backend_pid);
		nulls[2] = (r->backend_pid == 0);
		values[3] = plcoord_text_or_null(r->owner, &nulls[3]);
		values[4] = plcoord_text_or_null(r->database, &nulls[4]);
		values[5] = CStringGetTextDatum(r->state);
		values[6] = plcoord_text_or_null(r->address, &nulls[6]);
		values[7] = plcoord_timestamp(r->created_at_us, &nulls[7]);
		values[8] = Int32GetDatum(r->ready_ms);
		nulls[8] = (r->ready_ms < 0);
		values[9] = plcoord_timestamp(r->last_used_us, &nulls[9]);
		values[10] = Int64GetDatum(r->uses);
		values[11] = Int64GetDatum(r->memory_kb);
		nulls[11] = (r->memory_kb < 0);
		values[12] = BoolGetDatum(r->oom_killed);
		values[13] = Int32GetDatum(r->exit_code);
		nulls[13] = (r->exit_code < 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * plcoordinator_stats
 *		Counters and latency percentiles since start or the last reset.
 */
Datum
plcoordinator_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = plcoord_result_desc(fcinfo);
	PlcoordStats st;
	Datum		values[27];
	bool		nulls[27] = {0};
	int			i = 0;

	plcoord_shmem_lock(false);
	st = plcoord_shared->snapshot.stats;
	plcoord_shmem_unlock();

	values[i++] = Int64GetDatum(st.requests);
	values[i++] = Int64GetDatum(st.warm_hits);
	values[i++] = Int64GetDatum(st.prewarm_hits);
	values[i++] = Int64GetDatum(st.cold_starts);
	values[i++] = Int64GetDatum(st.start_failures);
	values[i++] = Int64GetDatum(st.docker_errors);
	values[i++] = Int64GetDatum(st.docker_unreachable);
	values[i++] = Int64GetDatum(st.docker_transient);
	values[i++] = Int64GetDatum(st.docker_not_found);
	values[i++] = Int64GetDatum(st.docker_other);
	values[i++] = Int64GetDatum(st.releases);
	values[i++] = Int64GetDatum(st.sessions_reaped);
	values[i++] = Int64GetDatum(st.orphans_removed);
	values[i++] = Int64GetDatum(st.queue_waits);
	values[i++] = Int64GetDatum(st.queue_timeouts);
	values[i++] = Float8GetDatum(st.acquire_p50_ms);
	values[i++] = Float8GetDatum(st.acquire_p95_ms);
	values[i++] = Float8GetDatum(st.acquire_p99_ms);
	values[i++] = Float8GetDatum(st.create_p50_ms);
	values[i++] = Float8GetDatum(st.create_p95_ms);
	values[i++] = Float8GetDatum(st.create_p99_ms);
	values[i++] = Float8GetDatum(st.start_p50_ms);
	values[i++] = Float8GetDatum(st.start_p95_ms);
	values[i++] = Float8GetDatum(st.start_p99_ms);
	values[i++] = Float8GetDatum(st.ready_p50_ms);
	values[i++] = Float8GetDatum(st.ready_p95_ms);
	values[i++] = Float8GetDatum(st.ready_p99_ms);
	Assert(i == lengthof(values));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
