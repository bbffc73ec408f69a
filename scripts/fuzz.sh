#!/usr/bin/env bash
# Runs every fuzz target of the package in turn, each for FUZZTIME (default
# 1m) with one worker, so that the machine stays usable. A crasher is written
# by go under testdata/fuzz/<target>/ and the script stops: commit it as a
# regression seed (plain `go test` runs it from then on) and fix the bug.
#
#	FUZZTIME=10m scripts/fuzz.sh
#	FUZZTIME=30s TARGETS='FuzzParseForm FuzzVerify' scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-1m}
parallel=${FUZZ_PARALLEL:-1}
targets=${TARGETS:-$(go test -list '^Fuzz' . | grep '^Fuzz')}
for target in $targets; do
	echo "== $target for $fuzztime (-parallel $parallel)"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel "$parallel" .
done
echo "== no crasher"
