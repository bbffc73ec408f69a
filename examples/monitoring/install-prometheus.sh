#!/usr/bin/env bash
# Installs prometheus and promtool from Debian's `prometheus` package, for the
# tests of examples/monitoring (go test ./examples/monitoring/).
#
# Idempotent: does nothing when both are on PATH already. Never leaves
# Debian's prometheus service running: the tests start their own Prometheus
# on a free port of 127.0.0.1, and a CI machine has no use for a daemon on
# :9090. Needs root, or sudo.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
	echo "== prometheus already installed: $(prometheus --version 2>&1 | head -n 1)"
	exit 0
fi

echo "== apt-get install prometheus (Debian's package: prometheus, promtool)"
bash "$(dirname "$0")/../../scripts/apt-install-no-service.sh" prometheus

echo "== installed: $(prometheus --version 2>&1 | head -n 1)"
command -v promtool >/dev/null
