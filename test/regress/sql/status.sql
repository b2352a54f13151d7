--
-- The coordinator worker: state, address, and its place among the processes.
--
SELECT plcoordinator.wait_until_ready(30000);

SELECT state,
       pid > 0 AS has_pid,
       address ~ '^unix:/.+/coordinator\.sock$' AS address_ok,
       started_at <= now() AS started,
       config_file ~ '/plcontainer_configuration\.xml$' AS default_config_file,
       docker_reachable
FROM plcoordinator.status;

-- The worker joins the proc array: pg_stat_activity shows it.
SELECT backend_type, application_name
FROM pg_stat_activity
WHERE pid = (SELECT pid FROM plcoordinator.status);

-- Views exist and are readable by everybody.
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_select
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'plcoordinator' AND c.relkind = 'v'
ORDER BY 1;

-- Invalid input: a negative timeout.
SELECT plcoordinator.wait_until_ready(-1);
