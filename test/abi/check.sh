#!/usr/bin/env bash
# Checks the rules of ARCHITECTURE.md §3 that a build can show:
#  1. the preloaded shim has no dependency on the Go library (a Go runtime
#     in the postmaster makes every forked child hang);
#  2. the Go library exports the entry points the worker dlsym()s;
#  6. no Go package of the library imports os/signal (it would take signals
#     away from PostgreSQL).
# Usage: test/abi/check.sh <plcoordinator.so> <plcoordinator_go.so>
set -euo pipefail
shim=$1
golib=$2
fail=0

if readelf -d "$shim" | grep NEEDED | grep -v -E '\[(libc|libdl|libpthread|libm)\.so' ; then
	echo "FAIL: $shim depends on more than libc (see above)"
	fail=1
elif readelf -d "$shim" | grep -q plcoordinator_go; then
	echo "FAIL: $shim links the Go library"
	fail=1
else
	echo "ok: $shim has no NEEDED entry for the Go library"
fi

for sym in PlcoordAbiVersion PlcoordMain; do
	if nm -D --defined-only "$golib" | grep -qw "$sym"; then
		echo "ok: $golib exports $sym"
	else
		echo "FAIL: $golib does not export $sym"
		fail=1
	fi
done

here=$(cd "$(dirname "$0")/../.." && pwd)
if (cd "$here" && go list -deps ./golib | grep -qx os/signal); then
	echo "FAIL: the Go library imports os/signal:"
	(cd "$here" && go list -f '{{.ImportPath}}: {{join .Imports " "}}' -deps ./golib | grep -w os/signal)
	fail=1
else
	echo "ok: the Go library does not import os/signal"
fi
exit $fail
