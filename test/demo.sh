#!/usr/bin/env bash
# The plcoordinator demo: builds and installs the extension, starts a
# throwaway PostgreSQL cluster with the coordinator preloaded and the local
# Docker engine, acquires a container through SQL, pings it, shows the
# views, and stops everything again.
#
# Usage: sudo test/demo.sh            (keeps nothing; --keep leaves the cluster running)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=test/setup.sh
source test/setup.sh
export PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
bin=/usr/lib/postgresql/15/bin
keep=0
[[ ${1:-} == --keep ]] && keep=1

echo "demo: building and installing"
make -s -j2 && make -s install
test/image/build.sh --if-missing

# The cluster lives under ./tmp when the postgres user can reach it (a
# clone under /root is out of its reach); otherwise under /tmp.
demo="$root/tmp/demo"
mkdir -p "$root/tmp"
if ! runuser -u postgres -- test -x "$root/tmp" 2>/dev/null; then
	demo=$(mktemp -d /tmp/plcoordinator-demo.XXXXXX)
	echo "demo: the postgres user cannot enter $root, using $demo"
fi
rm -rf "$demo" && mkdir -p "$demo" && chown postgres "$demo"
port=54329
while runuser -u postgres -- "$bin/pg_isready" -q -h "$demo" -p "$port" 2>/dev/null ||
	ss -ltn 2>/dev/null | grep -q ":$port "; do
	port=$((port + 1))
done

pg() { runuser -u postgres -- "$@"; }
cleanup() {
	if [[ $keep -eq 0 ]]; then
		pg "$bin/pg_ctl" -D "$demo/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

pg "$bin/initdb" -D "$demo/data" -A trust >/dev/null
cat >>"$demo/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$demo'
listen_addresses = ''
shared_preload_libraries = 'plcoordinator'
plcoordinator.max_container_number = 10
plcoordinator.socket_dir = '$demo/s'
CONF
cat >"$demo/data/plcontainer_configuration.xml" <<'XML'
<?xml version="1.0" ?>
<configuration>
    <runtime>
        <id>plc_demo</id>
        <image>plcoordinator-test-client:latest</image>
        <command>/plcclient</command>
        <setting memory_mb="128" cpu_share="512"/>
        <coordinator prewarm="1"/>
    </runtime>
</configuration>
XML
chown postgres "$demo/data/plcontainer_configuration.xml"
pg "$bin/pg_ctl" -D "$demo/data" -l "$demo/server.log" -w start >/dev/null
echo "demo: PostgreSQL on port $port, log $demo/server.log"

psql=(runuser -u postgres -- "$bin/psql" -X -h "$demo" -p "$port" -d postgres -v ON_ERROR_STOP=1)
"${psql[@]}" <<'SQL'
\echo '--- the coordinator is a background worker; wait for it'
CREATE EXTENSION plcoordinator;
SELECT plcoordinator.wait_until_ready(10000);
\x on
SELECT * FROM plcoordinator.status;
\x off
\echo '--- the runtimes it read from plcontainer_configuration.xml'
SELECT runtime_id, image, command, memory_mb, cpu_share, prewarm, start_timeout_s FROM plcoordinator.runtimes;
\echo '--- acquire a container (first call: a prewarmed container if one is ready), then again'
\timing on
SELECT left(container_id, 12) AS container, reused, prewarmed, wait_ms, connected FROM plcoordinator.acquire('plc_demo');
SELECT left(container_id, 12) AS container, reused, prewarmed, wait_ms FROM plcoordinator.acquire('plc_demo');
\echo '--- PL/Container''s PING handshake with the container'
SELECT left(container_id, 12) AS container, client_version, round_trip_ms FROM plcoordinator.ping('plc_demo');
\timing off
\echo '--- the views'
SELECT left(container_id, 12) AS container, runtime_id, backend_pid, owner, state, ready_ms, uses FROM plcoordinator.containers ORDER BY state;
SELECT pid, containers, last_request FROM plcoordinator.requesters;
SELECT requests, warm_hits, prewarm_hits, cold_starts, acquire_p50_ms FROM plcoordinator.stats;
SELECT "SEGMENT_ID", left("CONTAINER_ID", 12) AS "CONTAINER_ID", "UP_TIME", "OWNER" FROM plcoordinator.containers_summary();
\echo '--- release_all (what a cancelled query does) removes the session''s containers'
SELECT plcoordinator.release_all();
SQL
echo "demo: docker sees these plcoordinator containers now:"
docker ps --filter label=plcoordinator.instance --format '  {{.ID}} {{.Image}} {{.Status}} {{.Label "plcoordinator.runtime"}}'
if [[ $keep -eq 1 ]]; then
	echo "demo: cluster left running: psql -h $demo -p $port -d postgres (as postgres); stop with pg_ctl -D $demo/data stop"
else
	cleanup
	trap - EXIT
	echo "demo: cluster stopped; containers left: $(docker ps -aq --filter label=plcoordinator.instance | wc -l)"
fi
