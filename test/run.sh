#!/usr/bin/env bash
# Runs every test of plcoordinator, as CI does: prepares the machine, builds
# and installs, then runs each suite and prints a summary.  Needs root (it
# installs into PostgreSQL's directories and runs the servers as the
# postgres OS user).  Exits non-zero if any suite failed.
#
# Usage: sudo test/run.sh
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=test/setup.sh
source test/setup.sh
# setup.sh stops at the first error; here every suite runs and the summary
# says which failed.
set +e
export PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
export GOFLAGS=-mod=readonly

names=()
results=()
times=()
failed=0

# step NAME COMMAND...: runs one suite and records its result.
step() {
	local name=$1 start rc
	shift
	printf '\n=== %s\n' "$name"
	start=$(date +%s)
	"$@"
	rc=$?
	names+=("$name")
	times+=($(($(date +%s) - start)))
	if [[ $rc -eq 0 ]]; then
		results+=(PASS)
	else
		results+=(FAIL)
		failed=$((failed + 1))
	fi
	return 0
}

build() {
	make -s -j2 && make -s install
}

# pg_regress runs initdb and the server as postgres, which may not be able
# to enter this tree (a clone under /root): run it from a copy it owns.
regress() {
	local stage rc
	stage=$(mktemp -d /tmp/plcoordinator-regress.XXXXXX)
	cp -r Makefile plcoordinator.control sql include bgworker test "$stage"/
	chown -R postgres "$stage"
	runuser -u postgres -- make -s -C "$stage" installcheck
	rc=$?
	if [[ $rc -ne 0 && -f $stage/test/regress/regression.diffs ]]; then
		cat "$stage/test/regress/regression.diffs"
	fi
	rm -rf "$stage"
	return $rc
}

# After every suite: no container of any test instance, no socket
# directory left behind.
leftovers() {
	local containers dirs
	containers=$(docker ps -aq --filter label=plcoordinator.instance | wc -l)
	dirs=$(find /tmp -mindepth 3 -maxdepth 3 -path '/tmp/.plcoordinator.*/c/*' 2>/dev/null | wc -l)
	echo "containers with label plcoordinator.instance: $containers; per-container socket directories: $dirs"
	[[ $containers -eq 0 && $dirs -eq 0 ]]
}

# The integration suite prints its summary table (scenario, result, leaks,
# time) whether it passes or not.
integration() {
	local summary rc
	summary=$(mktemp)
	PLCI_SUMMARY=$summary go test -count=1 -timeout 30m -tags integration ./test/integration/
	rc=$?
	cat "$summary"
	rm -f "$summary"
	return $rc
}

step "build and install" build
step "lint (gofmt, go vet)" make -s lint
step "ABI and linking rules" make -s abicheck
step "C codec vs golden frames" make -s protocheck
step "test runtime image" make -s test-image
step "Go unit and Docker tests" go test -race -count=1 -tags integration ./golib/... ./test/image/...
step "fuzzing (brief)" make -s fuzz
step "pg_regress" regress
step "integration (PostgreSQL + Docker)" integration
step "nothing left behind" leftovers

printf '\n%-40s %-6s %s\n' "suite" "result" "seconds"
for i in "${!names[@]}"; do
	printf '%-40s %-6s %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
printf '%d passed, %d failed\n' $((${#names[@]} - failed)) "$failed"
[[ $failed -eq 0 ]]
