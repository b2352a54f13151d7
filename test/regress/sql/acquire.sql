--
-- Acquiring containers: the session cache, PING, release, errors.
--
SELECT plcoordinator.wait_until_ready(30000);

SELECT write_config('<configuration><runtime><id>plc_test</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command></runtime></configuration>');
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');
SELECT plcoordinator.release_all() >= 0 AS clean;

-- A cold start, then the same container again for this session.
SELECT length(container_id) = 64 AS id_ok,
       address ~ '^unix:/.+/unix\.domain\.socket\.shared\.file$' AS address_ok,
       reused, prewarmed, wait_ms >= 0 AS waited, connected
FROM plcoordinator.acquire('plc_test');
SELECT reused, connected FROM plcoordinator.acquire('plc_test');
SELECT count(DISTINCT container_id) AS containers
FROM (SELECT container_id FROM plcoordinator.acquire('plc_test')
      UNION ALL SELECT container_id FROM plcoordinator.acquire('plc_test')) s;

-- PL/Container's PING handshake over the connection handed to us.
SELECT client_version, round_trip_ms >= 0 AS rtt_ok, reused, prewarmed
FROM plcoordinator.ping('plc_test');
SELECT client_version FROM plcoordinator.ping('plc_test');

-- The views agree.
-- (Containers of earlier tests' sessions may still be stopping: Docker takes
-- a moment to remove a container with networking.)
CREATE VIEW mine AS
    SELECT * FROM plcoordinator.containers WHERE backend_pid = pg_backend_pid();
SELECT runtime_id, owner, database, state,
       ready_ms >= 0 AS ready, uses >= 5 AS used, exit_code, oom_killed
FROM mine;
SELECT containers, last_request FROM plcoordinator.requesters WHERE pid = pg_backend_pid();
SELECT "SEGMENT_ID", length("CONTAINER_ID") AS id_length, "UP_TIME" ~ '^Up ' AS up, "OWNER"
FROM plcoordinator.containers_summary()
WHERE "CONTAINER_ID" IN (SELECT container_id FROM mine);
SELECT requests >= 6 AS requests, cold_starts >= 1 AS cold_starts, warm_hits >= 5 AS warm_hits,
       acquire_p99_ms >= acquire_p50_ms AS percentiles
FROM plcoordinator.stats;

-- Release keeps the container with the session, idle.
SELECT plcoordinator.release('plc_test');
SELECT state FROM mine;
SELECT reused FROM plcoordinator.acquire('plc_test');
SELECT plcoordinator.release('not_held');

-- release_all removes them.
SELECT plcoordinator.release_all();
SELECT count(*) AS live FROM mine WHERE state <> 'stopping';

-- The seed's flow: address only, the backend connects and pings itself.
SELECT connected FROM plcoordinator.acquire('plc_test', handoff => false);
SELECT client_version, reused FROM plcoordinator.ping('plc_test', handoff => false);
SELECT plcoordinator.release_all();

-- Invalid input and failures, with their SQLSTATEs.
SELECT errcheck($$SELECT * FROM plcoordinator.acquire('nope')$$);
SELECT errcheck($$SELECT * FROM plcoordinator.acquire(NULL)$$);
SELECT errcheck($$SELECT * FROM plcoordinator.acquire('')$$);
SELECT errcheck($$SELECT * FROM plcoordinator.ping(repeat('x', 64))$$);
SELECT errcheck($$SELECT plcoordinator.release(NULL)$$);
SELECT errcheck($$SELECT plcoordinator.debug_panic()$$);

-- Counters start again from zero.
SELECT plcoordinator.stats_reset();
SELECT requests, warm_hits, cold_starts, acquire_p50_ms, create_p50_ms, docker_errors
FROM plcoordinator.stats;

-- On reload, an idle container of a changed runtime goes at once, one in
-- use when it is released; new requests use the new definition.
SELECT reused FROM plcoordinator.acquire('plc_test');
SELECT plcoordinator.release('plc_test');
SELECT write_config('<configuration><runtime><id>plc_test</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command><setting memory_mb="200"/></runtime></configuration>');
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');
SELECT count(*) AS live FROM mine WHERE state <> 'stopping';
SELECT reused FROM plcoordinator.acquire('plc_test');
SELECT write_config('<configuration><runtime><id>plc_test</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command><setting memory_mb="300"/></runtime></configuration>');
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');
SELECT state FROM mine WHERE state <> 'stopping';
SELECT plcoordinator.release('plc_test');
SELECT count(*) AS live FROM mine WHERE state <> 'stopping';
SELECT reused FROM plcoordinator.acquire('plc_test');
SELECT plcoordinator.release_all();

-- A missing image is a Docker failure.
SELECT write_config('<configuration><runtime><id>plc_test</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command></runtime><runtime><id>plc_noimage</id><image>plcoordinator-no-such-image:latest</image><command>/plcclient</command></runtime></configuration>');
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');
SELECT regexp_replace(errcheck($$SELECT * FROM plcoordinator.acquire('plc_noimage')$$), 'HINT: .*', 'HINT: ...');
SELECT docker_errors, docker_errors_not_found, start_failures FROM plcoordinator.stats;
SELECT count(*) AS live FROM mine WHERE state <> 'stopping';
DROP VIEW mine;
