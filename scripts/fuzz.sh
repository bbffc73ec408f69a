#!/usr/bin/env bash
# Runs every fuzz target of the module's packages in turn, each for FUZZTIME (default
# 1m) with one worker, so that the machine stays usable. A crasher is written
# by go under testdata/fuzz/<target>/ and the script stops: commit it as a
# regression seed (plain `go test` runs it from then on) and fix the bug.
#
# The test binary holds all of Caddy, so each execution resets a large
# coverage map (about a thousand executions a second here); minimising every
# new interesting input for go's default 60s would stall the search, hence
# FUZZ_MINIMIZE (default 5s; a crasher is still minimised for that long).
#
#	FUZZTIME=10m scripts/fuzz.sh
#	FUZZTIME=30s TARGETS='FuzzParseForm FuzzVerify' scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-1m}
parallel=${FUZZ_PARALLEL:-1}
minimize=${FUZZ_MINIMIZE:-5s}
for pkg in . ./alipay ./antom ./internal/rsaverify; do
	[ -d "$pkg" ] || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		if [ -n "${TARGETS:-}" ] && ! grep -qw "$target" <<<"$TARGETS"; then
			continue
		fi
		echo "== $pkg $target for $fuzztime (-parallel $parallel)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel "$parallel" -fuzzminimizetime "$minimize" -timeout 0 "$pkg"
	done
done
echo "== no crasher"
