/* sql/plcoordinator--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION plcoordinator" to load this file. \quit

-- API: Public. The coordinator's state, straight from shared memory.
CREATE FUNCTION plcoordinator._status(
    OUT state text,
    OUT pid integer,
    OUT address text,
    OUT started_at timestamptz,
    OUT generation bigint,
    OUT config_file text,
    OUT config_loaded_at timestamptz,
    OUT last_config_error text,
    OUT last_config_error_at timestamptz,
    OUT docker_reachable boolean,
    OUT containers integer,
    OUT runtimes integer)
RETURNS record
AS 'MODULE_PATHNAME', 'plcoordinator_status'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW plcoordinator.status AS
    SELECT * FROM plcoordinator._status();
COMMENT ON VIEW plcoordinator.status IS
    'State of the plcoordinator background worker: pid, socket address, configuration and Docker status';

CREATE FUNCTION plcoordinator.wait_until_ready(timeout_ms integer DEFAULT 30000)
RETURNS boolean
AS 'MODULE_PATHNAME', 'plcoordinator_wait_until_ready'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION plcoordinator.wait_until_ready(integer) IS
    'Waits until the coordinator is ready; false if it is not within timeout_ms';

CREATE FUNCTION plcoordinator.acquire(
    runtime_id text,
    handoff boolean DEFAULT true,
    OUT container_id text,
    OUT address text,
    OUT reused boolean,
    OUT prewarmed boolean,
    OUT wait_ms integer,
    OUT connected boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'plcoordinator_acquire'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION plcoordinator.acquire(text, boolean) IS
    'Gets this session''s container of a runtime, starting or reusing one; with handoff the coordinator passes a connected socket';

CREATE FUNCTION plcoordinator.release(runtime_id text)
RETURNS integer
AS 'MODULE_PATHNAME', 'plcoordinator_release'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION plcoordinator.release(text) IS
    'Marks this session''s container of a runtime idle; it stays with the session';

CREATE FUNCTION plcoordinator.release_all()
RETURNS integer
AS 'MODULE_PATHNAME', 'plcoordinator_release_all'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION plcoordinator.release_all() IS
    'Removes every container of this session (what a cancelled query does)';

CREATE FUNCTION plcoordinator.ping(
    runtime_id text,
    handoff boolean DEFAULT true,
    OUT container_id text,
    OUT client_version text,
    OUT round_trip_ms double precision,
    OUT reused boolean,
    OUT prewarmed boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'plcoordinator_ping'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION plcoordinator.ping(text, boolean) IS
    'Acquires a container and does PL/Container''s PING handshake with it';

CREATE FUNCTION plcoordinator.reload_config()
RETURNS text
AS 'MODULE_PATHNAME', 'plcoordinator_reload_config'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION plcoordinator.reload_config() IS
    'Re-reads the runtime configuration file; raises an error listing every problem if it is invalid';

CREATE FUNCTION plcoordinator._status_json()
RETURNS json
AS 'MODULE_PATHNAME', 'plcoordinator_status_json'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION plcoordinator._containers(
    OUT container_id text,
    OUT runtime_id text,
    OUT backend_pid integer,
    OUT owner text,
    OUT database text,
    OUT state text,
    OUT address text,
    OUT created_at timestamptz,
    OUT ready_ms integer,
    OUT last_used timestamptz,
    OUT uses bigint,
    OUT memory_kb bigint,
    OUT oom_killed boolean,
    OUT exit_code integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'plcoordinator_containers'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW plcoordinator.containers AS
    SELECT * FROM plcoordinator._containers();
COMMENT ON VIEW plcoordinator.containers IS
    'Containers of this instance (a role that is not superuser sees only its own), from shared memory';

CREATE FUNCTION plcoordinator._stats(
    OUT requests bigint,
    OUT warm_hits bigint,
    OUT prewarm_hits bigint,
    OUT cold_starts bigint,
    OUT start_failures bigint,
    OUT docker_errors bigint,
    OUT docker_errors_unreachable bigint,
    OUT docker_errors_transient bigint,
    OUT docker_errors_not_found bigint,
    OUT docker_errors_other bigint,
    OUT releases bigint,
    OUT sessions_reaped bigint,
    OUT orphans_removed bigint,
    OUT queue_waits bigint,
    OUT queue_timeouts bigint,
    OUT acquire_p50_ms double precision,
    OUT acquire_p95_ms double precision,
    OUT acquire_p99_ms double precision,
    OUT create_p50_ms double precision,
    OUT create_p95_ms double precision,
    OUT create_p99_ms double precision,
    OUT start_p50_ms double precision,
    OUT start_p95_ms double precision,
    OUT start_p99_ms double precision,
    OUT ready_p50_ms double precision,
    OUT ready_p95_ms double precision,
    OUT ready_p99_ms double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'plcoordinator_stats'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW plcoordinator.stats AS
    SELECT * FROM plcoordinator._stats();
COMMENT ON VIEW plcoordinator.stats IS
    'Coordinator counters and latency percentiles since start';

CREATE FUNCTION plcoordinator.stats_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'plcoordinator_stats_reset'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION plcoordinator.stats_reset() IS
    'Zeroes the counters and latency samples of plcoordinator.stats';

CREATE VIEW plcoordinator.runtimes AS
    SELECT r.*
    FROM json_to_recordset(plcoordinator._status_json() -> 'runtimes') AS r(
        runtime_id text,
        image text,
        command text,
        memory_mb bigint,
        cpu_share bigint,
        use_container_logging boolean,
        enable_network boolean,
        roles text[],
        resource_group_id text,
        shared_directories text[],
        device_requests text[],
        backend text,
        prewarm integer,
        idle_timeout_s integer,
        max_containers integer,
        reuse_across_sessions boolean,
        start_timeout_s integer);
COMMENT ON VIEW plcoordinator.runtimes IS
    'Runtimes of the loaded configuration with every setting resolved, defaults included';

CREATE VIEW plcoordinator.requesters AS
    SELECT r.*
    FROM json_to_recordset(plcoordinator._status_json() -> 'requesters') AS r(
        pid integer,
        connected_at timestamptz,
        containers integer,
        last_request text,
        last_request_at timestamptz);
COMMENT ON VIEW plcoordinator.requesters IS
    'Backends connected to the coordinator and the containers they hold';

CREATE FUNCTION plcoordinator.containers_summary()
RETURNS TABLE ("SEGMENT_ID" text, "CONTAINER_ID" text, "UP_TIME" text,
               "OWNER" text, "MEMORY_USAGE(KB)" text)
LANGUAGE sql STABLE
AS $$
    SELECT '-1'::text, c.container_id,
           CASE WHEN c.exit_code IS NOT NULL
                THEN 'Exited (' || c.exit_code || ')'
                ELSE 'Up ' || justify_interval(date_trunc('second', now() - c.created_at))::text
           END,
           c.owner, c.memory_kb::text
    FROM plcoordinator.containers AS c
    WHERE c.container_id IS NOT NULL
$$;
COMMENT ON FUNCTION plcoordinator.containers_summary() IS
    'PL/Container-compatible container summary (SEGMENT_ID, CONTAINER_ID, UP_TIME, OWNER, MEMORY_USAGE(KB))';

CREATE FUNCTION plcoordinator.debug_panic()
RETURNS void
AS 'MODULE_PATHNAME', 'plcoordinator_debug_panic'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION plcoordinator.debug_panic() IS
    'Test hook: makes the coordinator panic (needs plcoordinator.enable_test_hooks)';

-- Monitoring is for everybody (containers filters by owner); control
-- functions are granted like the views, reload and test hooks are not.
REVOKE ALL ON FUNCTION plcoordinator.reload_config() FROM PUBLIC;
REVOKE ALL ON FUNCTION plcoordinator.debug_panic() FROM PUBLIC;
REVOKE ALL ON FUNCTION plcoordinator.stats_reset() FROM PUBLIC;
GRANT USAGE ON SCHEMA plcoordinator TO PUBLIC;
GRANT SELECT ON plcoordinator.status, plcoordinator.containers,
    plcoordinator.stats, plcoordinator.runtimes, plcoordinator.requesters TO PUBLIC;
