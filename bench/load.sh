#!/usr/bin/env bash
# Load benchmark of the built Caddy, on loopback only, bounded in time.
#
# One Caddy process (built from ./cmd/caddy) serves, on one port:
#   A  /proxy          reverse_proxy of the POST to the upstream (the baseline)
#   B  /alipay/notify  alipay_notify: verify the real Alipay vector, forward
#                      it as a Standard Webhooks POST to the same upstream
#   C  /alipay/notify  the same, flooded with a forged notification (the
#                      tampered-amount vector): verification fails, 403
# The upstream is bench/upstream (answers 204). wrk POSTs the same body with
# bench/post.lua; the rounds alternate A, B, C. For every round: req/s, p50
# and p99 latency, the Caddy process's CPU time per request (utime+stime from
# /proc/<pid>/stat before and after), the answers by status, and how many
# webhooks the upstream received. Then the medians, the ratios (of the
# medians, and the medians of each round's ratios, which compare runs made
# back to back) and the targets, judged on the per-round ratios:
#   B CPU/request <= 1.30x A, B req/s >= 0.85x A, no errors,
#   C CPU/request <= 0.6x B CPU/request, and C never forwarded.
# With PROFILE_DIR set, Caddy's admin endpoint listens on a loopback port
# and, after the measured rounds, one more round of each (not counted)
# records a CPU profile of Caddy: PROFILE_DIR/{A,B,C}.pprof, next to the
# binary (PROFILE_DIR/caddy) for go tool pprof.
#
#	bench/load.sh                                   # 3 rounds of 10 s each
#	ROUNDS=5 DURATION=10 CONNECTIONS=32 THREADS=2 bench/load.sh
#	PROFILE_DIR=/tmp/prof bench/load.sh && go tool pprof -top /tmp/prof/caddy /tmp/prof/B.pprof
#
# Needs wrk, curl and (optional, HYPERFINE=0 skips it) hyperfine:
#	apt-get install -y wrk hyperfine curl
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-3}
duration=${DURATION:-10}
warmup=${WARMUP:-3}
connections=${CONNECTIONS:-32}
threads=${THREADS:-2}
hyperfine_runs=${HYPERFINE_RUNS:-300}

for tool in wrk curl; do
	command -v "$tool" >/dev/null || { echo "load.sh: $tool is missing (apt-get install -y wrk hyperfine curl)" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# free_port prints a loopback port that nothing listens on.
free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}

# wait_http URL: wait until URL answers.
wait_http() {
	for _ in $(seq 100); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "load.sh: $1 did not answer" >&2
	exit 1
}

# field FILE NAME: a string field of a vector file (bodies are URL-encoded,
# so they hold no quote or backslash).
field() { sed -n "s/^ *\"$2\": \"\(.*\)\",\{0,1\}$/\1/p" "$1" | head -1; }

echo "== building ./cmd/caddy and bench/upstream"
go build -o "$tmp/caddy" ./cmd/caddy
(cd bench && go build -o "$tmp/upstream" ./upstream)

valid=testdata/vectors/trade-rsa2-production.json
forged=testdata/vectors/trade-rsa2-production-tampered-amount.json
field "$valid" body | tr -d '\n' >"$tmp/valid.body"
field "$forged" body | tr -d '\n' >"$tmp/forged.body"
app_id=$(field "$valid" app_id)
key=$(field "$valid" alipay_public_key)
if [ ! -s "$tmp/valid.body" ] || [ ! -s "$tmp/forged.body" ] || [ -z "$app_id" ] || [ -z "$key" ]; then
	echo "load.sh: could not read the vectors" >&2
	exit 1
fi

upstream_port=$(free_port)
"$tmp/upstream" -listen "127.0.0.1:$upstream_port" 2>"$tmp/upstream.log" &
pids+=($!)
wait_http "http://127.0.0.1:$upstream_port/count"

caddy_port=$(free_port)
admin=off
if [ -n "${PROFILE_DIR:-}" ]; then
	mkdir -p "$PROFILE_DIR"
	cp "$tmp/caddy" "$PROFILE_DIR/caddy"
	admin_port=$(free_port)
	admin=127.0.0.1:$admin_port
fi
cat >"$tmp/Caddyfile" <<EOF
{
	admin $admin
	auto_https off
	default_bind 127.0.0.1
	persist_config off
}
http://127.0.0.1:$caddy_port {
	reverse_proxy /proxy 127.0.0.1:$upstream_port
	alipay_notify /alipay/notify {
		app_id $app_id
		alipay_public_key $key
		forward http://127.0.0.1:$upstream_port/hooks/alipay
		webhook_secret whsec_$(head -c 32 /dev/urandom | base64)
		max_age off
	}
}
EOF
XDG_CONFIG_HOME=$tmp XDG_DATA_HOME=$tmp HOME=$tmp "$tmp/caddy" run --config "$tmp/Caddyfile" --adapter caddyfile 2>"$tmp/caddy.log" &
caddy_pid=$!
pids+=("$caddy_pid")
base=http://127.0.0.1:$caddy_port
wait_http "$base/"

post() { curl -s -o "$tmp/answer" -w '%{http_code} ' -X POST -H 'Content-Type: application/x-www-form-urlencoded; text/html; charset=UTF-8' --data-binary "@$2" "$base$1"; cat "$tmp/answer"; }
check_a=$(post /proxy "$tmp/valid.body")
check_b=$(post /alipay/notify "$tmp/valid.body")
check_c=$(post /alipay/notify "$tmp/forged.body")
echo "== sanity: A -> $check_a, B -> $check_b, C -> $check_c"
if [ "$check_a" != "204 " ] || [ "$check_b" != "200 success" ] || [ "$check_c" != "403 fail" ]; then
	echo "load.sh: unexpected answers (want 204, 200 success, 403 fail); caddy log:" >&2
	tail -20 "$tmp/caddy.log" >&2
	exit 1
fi

clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$caddy_pid/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$caddy_pid/status"; }
upstream_count() { curl -s "http://127.0.0.1:$upstream_port/count"; }

# run NAME PATH BODY SECONDS: one wrk run; prints its RESULT line plus the
# CPU time per request and the webhooks the upstream received.
run() {
	local name=$1 path=$2 body=$3 seconds=$4 before after hits_before hits_after result requests
	hits_before=$(upstream_count)
	before=$(cpu_ticks)
	result=$(BODY_FILE=$body wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 10s -s bench/post.lua "$base$path" | grep '^RESULT')
	after=$(cpu_ticks)
	hits_after=$(upstream_count)
	requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$result")
	awk -v n="$name" -v r="$result" -v t=$((after - before)) -v clk="$clk" -v req="$requests" -v fwd=$((hits_after - hits_before)) \
		'BEGIN { sub(/^RESULT /, "", r); printf "%s %s cpu_us_per_req=%.1f forwarded=%d\n", n, r, t * 1e6 / clk / req, fwd }'
}

echo "== warm-up (${warmup}s each)"
run A /proxy "$tmp/valid.body" "$warmup" >/dev/null
run B /alipay/notify "$tmp/valid.body" "$warmup" >/dev/null
run C /alipay/notify "$tmp/forged.body" "$warmup" >/dev/null
rss_before=$(rss_kib)

echo "== $rounds rounds of A, B, C, ${duration}s each, wrk -t$threads -c$connections; $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
: >"$tmp/results"
for i in $(seq "$rounds"); do
	run A /proxy "$tmp/valid.body" "$duration" | tee -a "$tmp/results"
	run B /alipay/notify "$tmp/valid.body" "$duration" | tee -a "$tmp/results"
	run C /alipay/notify "$tmp/forged.body" "$duration" | tee -a "$tmp/results"
done
rss_after=$(rss_kib)
echo "== Caddy RSS after warm-up ${rss_before} KiB, after the rounds ${rss_after} KiB"

if [ -n "${PROFILE_DIR:-}" ]; then
	echo "== profiling: one more round of A, B, C (not counted), CPU profiles in $PROFILE_DIR"
	for scenario in "A /proxy $tmp/valid.body" "B /alipay/notify $tmp/valid.body" "C /alipay/notify $tmp/forged.body"; do
		set -- $scenario
		curl -s -o "$PROFILE_DIR/$1.pprof" "http://127.0.0.1:$admin_port/debug/pprof/profile?seconds=$((duration - 1))" &
		profiler=$!
		run "$@" "$duration"
		wait "$profiler"
	done
fi

if [ "${HYPERFINE:-1}" != 0 ] && command -v hyperfine >/dev/null; then
	echo "== one request at a time (hyperfine, curl per request: mostly curl's own start-up)"
	hyperfine -N --style none --warmup 20 --runs "$hyperfine_runs" --export-markdown "$tmp/hyperfine.md" \
		-n "A reverse_proxy" "curl -s -o /dev/null -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data-binary @$tmp/valid.body $base/proxy" \
		-n "B alipay_notify" "curl -s -o /dev/null -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data-binary @$tmp/valid.body $base/alipay/notify" \
		-n "C forged" "curl -s -o /dev/null -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data-binary @$tmp/forged.body $base/alipay/notify" >/dev/null
	cat "$tmp/hyperfine.md"
fi

echo "== medians"
awk -v connections="$connections" '
function get(line, key,    m) { if (match(line, key "=[^ ]*")) return substr(line, RSTART + length(key) + 1, RLENGTH - length(key) - 1); return "" }
function med(v, n,    i, j, t, w) {
	for (i = 1; i <= n; i++) w[i] = v[i]
	for (i = 2; i <= n; i++) { t = w[i]; for (j = i - 1; j >= 1 && w[j] > t; j--) w[j + 1] = w[j]; w[j + 1] = t }
	return n % 2 ? w[(n + 1) / 2] : (w[n / 2] + w[n / 2 + 1]) / 2
}
function lo(v, n,    i, m) { m = v[1]; for (i = 2; i <= n; i++) if (v[i] < m) m = v[i]; return m }
function hi(v, n,    i, m) { m = v[1]; for (i = 2; i <= n; i++) if (v[i] > m) m = v[i]; return m }
function median(name, key,    n, i, j, v, t) {
	n = 0
	for (i = 1; i <= count; i++) if (names[i] == name) v[++n] = get(lines[i], key) + 0
	for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{ names[++count] = $1; lines[count] = $0 }
END {
	ok = 1
	for (i = 1; i <= count; i++) {
		l = lines[i]; n = names[i]; req = get(l, "requests") + 0; fwd = get(l, "forwarded") + 0; st = get(l, "statuses")
		if (get(l, "errors") + 0 != 0) { print "FAIL: socket errors in " l; ok = 0 }
		code = (n == "A") ? "204" : ((n == "B") ? "200" : "403")
		want = code "=" req
		if (st != want) { print "FAIL: " n " answered " st ", want only " want; ok = 0 }
		if (n == "C" && fwd != 0) { print "FAIL: forged notifications forwarded: " l; ok = 0 }
		if (n != "C" && (fwd < req || fwd > req + connections)) { print "FAIL: " n " forwarded " fwd " for " req " answers"; ok = 0 }
	}
	for (k = 1; k <= 3; k++) {
		s = substr("ABC", k, 1)
		rps[s] = median(s, "rps"); cpu[s] = median(s, "cpu_us_per_req")
		printf "%s  req/s %8.0f   p50 %6.0f us   p99 %6.0f us   CPU/request %6.1f us\n", s, rps[s], median(s, "p50_us"), median(s, "p99_us"), cpu[s]
	}
	# Per-round ratios: the rounds run A, B, C back to back, so the ratios of
	# one round compare runs made under the same conditions of a shared machine.
	rounds = 0
	for (i = 1; i <= count; i++) {
		if (names[i] != "A") continue
		a = lines[i]; b = lines[i + 1]; c = lines[i + 2]
		rounds++
		bacpu[rounds] = get(b, "cpu_us_per_req") / get(a, "cpu_us_per_req")
		barps[rounds] = get(b, "rps") / get(a, "rps")
		cbcpu[rounds] = get(c, "cpu_us_per_req") / get(b, "cpu_us_per_req")
	}
	pbacpu = med(bacpu, rounds); pbarps = med(barps, rounds); pcbcpu = med(cbcpu, rounds)
	printf "ratios of the medians:           B/A CPU per request %.2fx   B/A req/s %.2fx   C/B CPU per request %.2fx\n", cpu["B"] / cpu["A"], rps["B"] / rps["A"], cpu["C"] / cpu["B"]
	printf "medians of the per-round ratios: B/A CPU per request %.2fx   B/A req/s %.2fx   C/B CPU per request %.2fx\n", pbacpu, pbarps, pcbcpu
	printf "spread of the per-round ratios (min to max):  B/A CPU %.2f-%.2f   B/A req/s %.2f-%.2f   C/B CPU %.2f-%.2f\n", \
		lo(bacpu, rounds), hi(bacpu, rounds), lo(barps, rounds), hi(barps, rounds), lo(cbcpu, rounds), hi(cbcpu, rounds)
	printf "targets (per-round ratios): B/A CPU <= 1.30 %s, B/A req/s >= 0.85 %s, C/B CPU <= 0.60 %s, answers and forwards %s\n", \
		((pbacpu <= 1.30) ? "met" : "MISSED"), ((pbarps >= 0.85) ? "met" : "MISSED"), ((pcbcpu <= 0.6) ? "met" : "MISSED"), (ok ? "as expected" : "WRONG")
}' "$tmp/results"
