--
-- PL/Container's role rule: runtimes with roles, network or devices are for
-- members of their roles only; superusers pass.  Checked in the backend.
--
SELECT plcoordinator.wait_until_ready(30000);

SELECT write_config('<configuration><runtime><id>plc_test</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command></runtime><runtime><id>plc_roles</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command><setting roles="plc_users"/></runtime><runtime><id>plc_net</id><image>plcoordinator-test-client:latest</image><command>/plcclient</command><setting enable_network="yes"/></runtime></configuration>');
SELECT replace(plcoordinator.reload_config(), current_setting('data_directory'), '$PGDATA');

CREATE ROLE plc_users;
CREATE ROLE plc_alice;
CREATE ROLE plc_bob;
GRANT plc_users TO plc_alice;
GRANT EXECUTE ON FUNCTION errcheck(text) TO PUBLIC;

-- Not a member: denied before anything is sent to the coordinator.
SET ROLE plc_bob;
SELECT errcheck($$SELECT * FROM plcoordinator.acquire('plc_roles')$$);
-- Network without roles: nobody but superusers.
SELECT errcheck($$SELECT * FROM plcoordinator.acquire('plc_net')$$);
-- A runtime without restrictions is for everybody.
SELECT reused FROM plcoordinator.acquire('plc_test');
-- A role sees only its own containers.
SELECT runtime_id, owner FROM plcoordinator.containers;
RESET ROLE;

-- A member passes.
SET ROLE plc_alice;
SELECT reused FROM plcoordinator.acquire('plc_roles');
SELECT runtime_id, owner FROM plcoordinator.containers ORDER BY runtime_id;
RESET ROLE;

-- A superuser sees every container and passes every check.
SELECT runtime_id, owner FROM plcoordinator.containers ORDER BY runtime_id, owner;
SELECT errcheck($$SELECT * FROM plcoordinator.acquire('plc_net')$$) ~ 'no error' AS superuser_passes;

SELECT plcoordinator.release_all();
DROP OWNED BY plc_alice, plc_bob;
DROP ROLE plc_alice;
DROP ROLE plc_bob;
DROP ROLE plc_users;
