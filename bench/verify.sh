#!/usr/bin/env bash
# Verification benchmarks, side by side in one run: the plugin's parse+verify
# next to its two floors (SHA-256 and rsa.VerifyPKCS1v15 of the precomputed
# string; SHA-256 and one Recover+Match with the key prepared once by
# internal/rsaverify) and a forged notification that carries sign_type, in
# the package, and the plugin beside smartwalle/alipay and go-pay/gopay.
# ROUNDS rounds (default 10) alternate the two test binaries; bench/ratios
# prints medians, minimums, the ratios with the spread of the per-round
# ratios, and the targets:
#
#   parse+verify <= 0.70x the crypto/rsa floor and <= 1.15x the precomputed
#   floor, at most 3 allocations; forged <= 1.05x a valid notification.
#
# The raw output is kept in bench/results/verify-<time>.txt (not committed).
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

echo "== $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(go version | cut -d' ' -f3-), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$rounds"); do
	(cd alipay && "$tmp/pkg.test" -test.run '^$' -test.bench '^BenchmarkVerify$' -test.benchmem -test.benchtime "$benchtime")
	(cd bench/compare && "$tmp/compare.test" -test.run '^$' -test.bench '^BenchmarkVerify$' -test.benchmem -test.benchtime "$benchtime" |
		sed 's/^BenchmarkVerify\//BenchmarkCompare\//')
done >"$tmp/raw.txt"
echo "== load average after the rounds $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p bench/results
raw=bench/results/verify-$(date +%Y%m%d-%H%M%S).txt
cp "$tmp/raw.txt" "$raw"
"$tmp/ratios" \
	-ratio 'Verify/package:Verify/floor<=0.70' \
	-ratio 'Verify/package:Verify/floor-precomputed<=1.15' \
	-ratio 'Verify/forged:Verify/package<=1.05' \
	-ratio 'Verify/floor-precomputed:Verify/floor' \
	-ratio 'Compare/plugin:Compare/floor' \
	-ratio 'Compare/smartwalle:Compare/plugin' \
	-ratio 'Compare/gopay:Compare/plugin' \
	-allocs 'Verify/package<=3' \
	<"$raw"
echo "(raw output: $raw)"
