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
	echo "== apt-get install redis-server (Debian's package)"
	bash ../scripts/apt-install-no-service.sh redis-server
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
