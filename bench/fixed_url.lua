-- wrk script for one fixed URL (headers come from wrk -H): done() prints one line,
-- "BENCH_JSON {...}", that run_all.py parses (the same fields as get_registration.lua).
--
--   wrk -t1 -c64 -d10s -H "Authorization: Bearer TOKEN" -s bench/fixed_url.lua URL

function done(summary, latency, _)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max))
end
