#!/usr/bin/env bash
# Installs a Debian package whose service the tests must not find running:
# the tests start their own daemon (redis-server for cluster/run-tests.sh,
# prometheus for examples/monitoring/install-prometheus.sh) on a free port
# of 127.0.0.1, and a CI machine has no use for a system one.
#
#	scripts/apt-install-no-service.sh <package> [<service>]
#
# <service> is the package's service, <package> unless told. Needs root, or
# sudo.
set -euo pipefail
package=$1
service=${2:-$1}

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "apt-install-no-service.sh: installing $package needs root, or sudo" >&2
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
	printf '#!/bin/sh\n# apt-install-no-service.sh: start no service during the install\nexit 101\n' |
		"${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends "$package" >/dev/null

# Belt and braces: should the service run anyway, stop it, and keep it off
# at boot. systemd may not be there at all (containers): then the SysV
# script is the one to ask.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
	"${sudo[@]}" systemctl disable --now "$service.service" >/dev/null 2>&1 || true
elif [ -x "/etc/init.d/$service" ]; then
	if "${sudo[@]}" "/etc/init.d/$service" status >/dev/null 2>&1; then
		"${sudo[@]}" "/etc/init.d/$service" stop >/dev/null 2>&1 || true
	fi
	"${sudo[@]}" update-rc.d "$service" disable >/dev/null 2>&1 || true
fi
