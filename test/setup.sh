#!/usr/bin/env bash
# Prepares a Debian 12 machine for building and testing plcoordinator, and
# is safe to run again: installs the missing packages, puts Go on PATH,
# makes sure a Docker engine answers (starting dockerd if none does), and
# puts the postgres OS user (PostgreSQL refuses to run as root) in the
# docker group so that the coordinator can reach the engine's socket.
#
# Usage (as root): test/setup.sh       Source it to get PATH set as well.
set -euo pipefail

setup_log=${TMPDIR:-/tmp}/plcoordinator-setup.log
say() { printf 'setup: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
	say "must run as root (it installs packages and starts dockerd)" >&2
	exit 1
fi

export PATH="/usr/local/go/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive

need=()
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || need+=(postgresql-15)
[[ -f /usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk ]] || need+=(postgresql-server-dev-15)
command -v make >/dev/null && command -v gcc >/dev/null || need+=(build-essential)
command -v docker >/dev/null || need+=(docker.io)
command -v readelf >/dev/null || need+=(binutils)
command -v runuser >/dev/null || need+=(util-linux)
command -v git >/dev/null || need+=(git)
if ((${#need[@]})); then
	say "installing ${need[*]} (log: $setup_log)"
	apt-get update -qq >>"$setup_log" 2>&1
	apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$setup_log" 2>&1
fi

if ! command -v go >/dev/null; then
	say "Go is missing: install Go 1.26 at /usr/local/go (this machine kind ships it)" >&2
	exit 1
fi

# A Docker engine must answer; start one if none does.
if ! timeout 10 docker info >/dev/null 2>&1; then
	say "no Docker engine answers: starting dockerd (log: ${TMPDIR:-/tmp}/dockerd.log)"
	(setsid dockerd >"${TMPDIR:-/tmp}/dockerd.log" 2>&1 &)
	for _ in $(seq 1 60); do
		timeout 5 docker info >/dev/null 2>&1 && break
		sleep 1
	done
	timeout 10 docker info >/dev/null 2>&1 || { say "dockerd did not come up" >&2; exit 1; }
fi

# The database OS user, able to use the engine's socket.
id postgres >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash postgres
getent group docker >/dev/null || groupadd --system docker
id -nG postgres | tr ' ' '\n' | grep -qx docker || usermod -aG docker postgres
chgrp docker /var/run/docker.sock 2>/dev/null || true
say "ready: $(go version | cut -d' ' -f3), PostgreSQL $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), Docker $(docker version --format '{{.Server.Version}}')"
