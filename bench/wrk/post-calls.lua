-- wrk script of `make bench`: POST a call request with a bearer token, and print the figures as one JSON line.
--
--   BENCH_TOKEN=<jwt> BENCH_BODY='{"to":"+155501140010"}' wrk -t1 -c64 -d10s -s bench/wrk/post-calls.lua URL
--
-- The same request (headers and body) goes to POST /api/v1/calls and to the baseline route, so that only the
-- server's work differs. Latencies are wrk's (closed loop: a connection sends its next request when the previous
-- one was answered).

local token = os.getenv("BENCH_TOKEN") or ""
local body = os.getenv("BENCH_BODY") or '{"to":"+155501140010"}'

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"timeouts":%d,'
            .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
        summary.requests, summary.duration, errors, summary.errors.status, summary.errors.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
        latency.max, latency.mean))
end
