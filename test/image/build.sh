#!/usr/bin/env bash
# Builds the test runtime image plcoordinator-test-client:latest from
# test/image/plcclient. Usage: test/image/build.sh [--if-missing]
#   --if-missing  do nothing when the image exists and was built from the
#                 current sources (label plcoordinator.source)
# Environment: GO (default: go on PATH, else /usr/local/go/bin/go),
#              DOCKER (default: docker), IMAGE (default: plcoordinator-test-client:latest).
set -euo pipefail

IMAGE="${IMAGE:-plcoordinator-test-client:latest}"
DOCKER="${DOCKER:-docker}"
if [[ -z "${GO:-}" ]]; then
	if command -v go >/dev/null 2>&1; then
		GO=go
	else
		GO=/usr/local/go/bin/go
	fi
fi

if_missing=0
for arg in "$@"; do
	case "$arg" in
	--if-missing) if_missing=1 ;;
	-h | --help)
		sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build.sh: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# The image carries a hash of what it is built from, so that a stale image
# is rebuilt rather than silently tested.
source_hash="$(cat "$here/Dockerfile" "$here"/plcclient/*.go | sha256sum | cut -c1-16)"
if [[ $if_missing -eq 1 ]] &&
	[[ "$("$DOCKER" image inspect --format '{{index .Config.Labels "plcoordinator.source"}}' "$IMAGE" 2>/dev/null)" == "$source_hash" ]]; then
	echo "build.sh: $IMAGE is up to date, skipping (--if-missing)"
	exit 0
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/plcclient-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT

echo "build.sh: building plcclient (static) in $ctx"
(cd "$root" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags='-s -w' -o "$ctx/plcclient" ./test/image/plcclient)
cp "$here/Dockerfile" "$ctx/Dockerfile"

echo "build.sh: docker build -t $IMAGE"
"$DOCKER" build -q --label "plcoordinator.source=$source_hash" -t "$IMAGE" "$ctx" >/dev/null
"$DOCKER" image inspect --format "build.sh: built $IMAGE {{.Id}} ({{.Size}} bytes)" "$IMAGE"
