#!/usr/bin/env bash
# The plcoordinator benchmark ("make bench", issue 7): prepares the machine,
# builds and installs the extension, builds the test runtime image, then runs
# test/bench (a throwaway cluster, every measurement in one run) and writes
# test/bench/results.json. Needs root. Extra arguments go to the program
# (-h lists them).
#
# Usage: sudo test/bench/run.sh [-out FILE] [-n 30] ...
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=test/setup.sh
source test/setup.sh
export PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

echo "bench: building and installing"
make -s -j2 && make -s install
test/image/build.sh --if-missing

# go.mod does not require github.com/jackc/pgx/v5 (yet): build against a
# copy of it that does, outside the tree, so that go.mod stays untouched.
args=(-tags bench)
if ! grep -q '^[[:space:]]*github.com/jackc/pgx/v5 ' go.mod; then
	modtmp=$(mktemp -d /tmp/plcbench-mod.XXXXXX)
	trap 'rm -rf "$modtmp"' EXIT
	cp go.mod "$modtmp/bench.mod"
	cp go.sum "$modtmp/bench.sum"
	GOFLAGS=-mod=mod go get -modfile="$modtmp/bench.mod" github.com/jackc/pgx/v5@v5.13.0 >/dev/null 2>&1 ||
		GOFLAGS=-mod=mod go get -modfile="$modtmp/bench.mod" github.com/jackc/pgx/v5@v5.13.0
	args+=(-modfile="$modtmp/bench.mod")
fi
go run "${args[@]}" ./test/bench -out test/bench/results.json "$@"
