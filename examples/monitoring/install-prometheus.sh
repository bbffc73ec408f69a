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

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "install-prometheus.sh: run as root, or install sudo" >&2
		exit 1
	fi
	sudo=(sudo)
fi

# The package's maintainer scripts start its service through invoke-rc.d,
# which asks /usr/sbin/policy-rc.d first: exit code 101 means "start
# nothing". Put one in place for the install unless the machine has its own
# (Docker images do), and remove it afterwards.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# install-prometheus.sh: start no service during the install\nexit 101\n' |
		"${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

echo "== apt-get install prometheus (Debian's package: prometheus, promtool)"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Belt and braces: should the service run anyway, stop it, and keep it off
# at boot. systemd may not be there at all (containers): then the SysV
# script is the one to ask.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
	"${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
	if "${sudo[@]}" /etc/init.d/prometheus status >/dev/null 2>&1; then
		"${sudo[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
	fi
fi

echo "== installed: $(prometheus --version 2>&1 | head -n 1)"
command -v promtool >/dev/null
