#!/usr/bin/env bash
# The cluster tests (cluster/, a module of its own): several Caddy instances,
# built with the redis storage module, sharing one redis-server on
# 127.0.0.1. CI calls this script; so can anyone:
#
#   bash cluster/run-tests.sh                 # everything
#   bash cluster/run-tests.sh -run Outbox -v  # arguments go to go test
#
# Installs Debian's redis-server when it is missing (needs root, or sudo),
# never leaving Debian's redis service running: the tests start their own
# redis-server on a free port of 127.0.0.1 and stop it.
set -euo pipefail
cd "$(dirname "$0")"

have_redis() {
	command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ]
}

if ! have_redis; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null; then
			echo "run-tests.sh: redis-server is missing; run as root, or install sudo" >&2
			exit 1
		fi
		sudo=(sudo)
	fi

	# The package's maintainer scripts start its service through invoke-rc.d,
	# which asks /usr/sbin/policy-rc.d first: exit code 101 means "start
	# nothing". Put one in place for the install unless the machine has its
	# own (Docker images do), and remove it afterwards.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# cluster/run-tests.sh: start no service during the install\nexit 101\n' |
			"${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		trap '"${sudo[@]}" rm -f "$policy"' EXIT
	fi

	echo "== apt-get install redis-server (Debian's package)"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends redis-server >/dev/null

	# Belt and braces: should the service run anyway, stop it, and keep it
	# off at boot. systemd may not be there at all (containers): then the
	# SysV script is the one to ask.
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
		"${sudo[@]}" systemctl disable --now redis-server.service >/dev/null 2>&1 || true
	elif [ -x /etc/init.d/redis-server ]; then
		if "${sudo[@]}" /etc/init.d/redis-server status >/dev/null 2>&1; then
			"${sudo[@]}" /etc/init.d/redis-server stop >/dev/null 2>&1 || true
		fi
		"${sudo[@]}" update-rc.d redis-server disable >/dev/null 2>&1 || true
	fi
	have_redis
fi
echo "== $(redis-server --version)"

echo "== gofmt, go vet (cluster module)"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted"
	exit 1
fi
go vet ./...

echo "== go test (cluster module)"
go test -count=1 "$@" ./...
