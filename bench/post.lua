-- wrk script for bench/load.sh: POSTs the body in the file $BODY_FILE with
-- Alipay's (malformed) Content-Type, and counts the answers by status so that
-- load.sh can check that every answer was the expected one.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; text/html; charset=UTF-8"

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	statuses = {}
end

function response(status, headers, body)
	statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
	local counts = {}
	for _, thread in ipairs(threads) do
		for status, n in pairs(thread:get("statuses")) do
			counts[status] = (counts[status] or 0) + n
		end
	end
	local parts = {}
	for status, n in pairs(counts) do
		table.insert(parts, status .. "=" .. n)
	end
	table.sort(parts)
	io.write(string.format("RESULT requests=%d errors=%d rps=%.1f p50_us=%d p99_us=%d statuses=%s\n",
		summary.requests,
		summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99),
		table.concat(parts, ",")))
end
