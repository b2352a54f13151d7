--
-- Settings: names, units, bounds, contexts.
--
SELECT name, setting, unit, context, vartype, min_val, max_val
FROM pg_settings
WHERE name LIKE 'plcoordinator.%'
ORDER BY name;

-- Invalid: a postmaster setting cannot change at run time.
SET plcoordinator.max_container_number = 5;
-- Invalid: a sighup setting cannot be set in a session.
SET plcoordinator.check_loop_interval = 2;
-- Invalid: the prefix is reserved.
SET plcoordinator.no_such_setting = 1;
