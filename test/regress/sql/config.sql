--
-- The runtime configuration file: loading, rejection, the runtimes view.
--
SELECT plcoordinator.wait_until_ready(30000);

-- Writes the configuration file into the data directory (one line of XML,
-- which COPY writes unchanged).
CREATE FUNCTION write_config(body text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('COPY (SELECT %L) TO %L', body,
                   current_setting('data_directory') || '/plcontainer_configuration.xml');
END $$;

-- Runs a statement and shows its error: SQLSTATE, message, detail, hint.
CREATE FUNCTION errcheck(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    -- pg_settings hides data_directory from roles that may not read it.
    RETURN replace(concat_ws(E'\n', st || ': ' || msg, nullif(det, ''), 'HINT: ' || nullif(hint, '')),
                   coalesce((SELECT setting FROM pg_settings WHERE name = 'data_directory'), chr(1)),
                   '$PGDATA');
END $$;

SELECT write_config('<configuration><runtime><id>plc_test</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command></runtime></configuration>');
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');

-- Every setting resolved, PL/Container's defaults included.
\x on
SELECT * FROM plcoordinator.runtimes;
\x off

-- A file with many problems: all of them are reported at once, and the
-- previous runtimes stay.
SELECT write_config('<configuration><runtime><id>plc_test</id><image>a</image><image>b</image><command>/c</command><setting memory_mb="-5" enable_network="maybe"/><shared_directory host="/x" container="/tmp/plcontainer" access="rw"/><bogus/></runtime><runtime><id>plc_test</id><command>/c</command></runtime><runtime><id>bad id!</id><image>i</image><command>/c</command></runtime></configuration>');
SELECT errcheck('SELECT plcoordinator.reload_config()');
SELECT runtime_id, image FROM plcoordinator.runtimes;
SELECT last_config_error IS NOT NULL AS has_error, last_config_error_at IS NOT NULL AS has_time
FROM plcoordinator.status;

-- Malformed XML.
SELECT write_config('<configuration><runtime>');
SELECT errcheck('SELECT plcoordinator.reload_config()');

-- Coordinator settings per runtime, and a runtime that changes.
SELECT write_config('<configuration><runtime><id>plc_test</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command><setting memory_mb="256" cpu_share="512"/><coordinator prewarm="0" idle_timeout="600" max_containers="4" start_timeout="20"/></runtime><runtime><id>plc_other</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command><shared_directory host="/tmp" container="/data" access="ro"/><setting roles="plc_users,plc_admins" use_container_logging="yes"/></runtime></configuration>');
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');
SELECT runtime_id, memory_mb, cpu_share, roles, shared_directories, use_container_logging,
       idle_timeout_s, max_containers, start_timeout_s
FROM plcoordinator.runtimes ORDER BY runtime_id;
SELECT last_config_error FROM plcoordinator.status;

-- A missing file means zero runtimes, stated clearly.
ALTER SYSTEM SET plcoordinator.config_file = 'no_such_file.xml';
SELECT pg_reload_conf();
-- reload_config() re-reads postgresql.conf first, so it sees the new path.
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');
SELECT count(*) AS runtimes FROM plcoordinator.runtimes;
ALTER SYSTEM RESET plcoordinator.config_file;
SELECT pg_reload_conf();
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');

-- Only superusers may reload.
CREATE ROLE plc_nobody;
SET ROLE plc_nobody;
SELECT errcheck('SELECT plcoordinator.reload_config()');
RESET ROLE;
DROP ROLE plc_nobody;
