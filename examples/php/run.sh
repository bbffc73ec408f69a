#!/usr/bin/env bash
# Runs receiver.php under PHP's built-in server:
#   WEBHOOK_SECRET=whsec_... PORT=8081 ./run.sh
# php -S has no "ready" hook and its banner goes to stderr, so this script
# prints the contract line "listening on 127.0.0.1:PORT" on stdout once the port
# accepts connections, then gets out of the way (exec: signals reach php itself).
set -euo pipefail
cd "$(dirname "$0")"
PORT="${PORT:-8081}"

php receiver.php # checks WEBHOOK_SECRET, exits non-zero with a message if it is unusable

# Where receiver.php records processed webhook-ids (see the comment there):
# a fresh directory per run unless SEEN_DIR is given.
own_dir=""
if [ -z "${SEEN_DIR:-}" ]; then
	SEEN_DIR="$(mktemp -d -t caddy-alipay-notify-seen.XXXXXX)"
	own_dir="$SEEN_DIR"
fi
export SEEN_DIR

shell_pid=$$ # after the exec below, this is php's pid
(
	exec </dev/null
	cleanup() { [ -z "$own_dir" ] || rm -rf "$own_dir"; exit 0; }
	trap cleanup TERM INT HUP # killed along with php's process group
	for _ in $(seq 100); do # up to ~10 s
		kill -0 "$shell_pid" 2>/dev/null || exit 0
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			echo "listening on 127.0.0.1:$PORT"
			break
		fi
		sleep 0.1
	done
	exec >/dev/null 2>&1 # let go of the caller's stdout pipe
	while kill -0 "$shell_pid" 2>/dev/null; do sleep 1; done
	cleanup
) &

# -q: no per-request access log lines on stderr.
exec php -q -S "127.0.0.1:$PORT" receiver.php
