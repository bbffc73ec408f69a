#!/usr/bin/env bash
# Verification benchmarks, side by side in one run: the plugin's parse+verify
# next to the floor (SHA-256 + rsa.VerifyPKCS1v15 of the precomputed string),
# in the package and beside smartwalle/alipay and go-pay/gopay. ROUNDS rounds
# (default 10) alternate the two test binaries; bench/ratios prints medians,
# minimums and ratios to the floor. The raw output is kept in
# bench/results/verify-<time>.txt (not committed).
#
#	bench/verify.sh            # from the repository root or from bench/
#	ROUNDS=20 BENCHTIME=2s bench/verify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-10}
benchtime=${BENCHTIME:-1s}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/pkg.test" ./alipay
(cd bench && go test -c -o "$tmp/compare.test" ./compare && go build -o "$tmp/ratios" ./ratios)

echo "== $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(go version | cut -d' ' -f3-)"
for i in $(seq "$rounds"); do
	"$tmp/pkg.test" -test.run '^$' -test.bench '^BenchmarkVerify$' -test.benchmem -test.benchtime "$benchtime"
	(cd bench/compare && "$tmp/compare.test" -test.run '^$' -test.bench '^BenchmarkVerify$' -test.benchmem -test.benchtime "$benchtime" |
		sed 's/^BenchmarkVerify\//BenchmarkCompare\//')
done >"$tmp/raw.txt"
mkdir -p bench/results
raw=bench/results/verify-$(date +%Y%m%d-%H%M%S).txt
cp "$tmp/raw.txt" "$raw"
"$tmp/ratios" <"$raw"
echo "(raw output: $raw)"
