#!/usr/bin/env bash
# The plcoordinator benchmark ("make bench", issue 7): prepares the machine,
# builds and installs the extension, builds the test runtime image, then runs
# test/bench (a throwaway cluster, every measurement in one run) and writes
# test/bench/results.json. Needs root. Extra arguments go to the program
# (-h lists them).
#
# Usage: sudo test/bench/run.sh [-out FILE] [-n 40] [-phases ab,c,d,e,f] ...
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=test/setup.sh
source test/setup.sh
export PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

echo "bench: building and installing"
make -s -j2 && make -s install
test/image/build.sh --if-missing

go run ./test/bench -out test/bench/results.json "$@"
