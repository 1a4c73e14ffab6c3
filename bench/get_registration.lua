-- wrk script: GET one registration with include=policy and a Bearer token, each request
-- for a registration drawn at random from a file of ids.
--
--   wrk -t1 -c64 -d10s -s bench/get_registration.lua http://127.0.0.1:PORT \
--       -- IDS_FILE ACCOUNT_ID API_TOKEN
--
-- init() reads the ids and formats every request once, so a request costs wrk one random
-- number and a table lookup. done() prints one line, "BENCH_JSON {...}", that run_get.py
-- parses: request count, duration, errors and latency percentiles in microseconds.

local requests = {}
local count = 0

function init(args)
   local ids_file, account_id, token = args[1], args[2], args[3]
   if not (ids_file and account_id and token) then
      error("usage: -- IDS_FILE ACCOUNT_ID API_TOKEN")
   end

   local prefix = "/client/v4/accounts/" .. account_id .. "/devices/registrations/"
   local headers = { ["Authorization"] = "Bearer " .. token }
   for id in io.lines(ids_file) do
      if id ~= "" then
         count = count + 1
         requests[count] = wrk.format("GET", prefix .. id .. "?include=policy", headers)
      end
   end
   if count == 0 then
      error("no registration ids in " .. ids_file)
   end

   -- Each wrk thread gets its own sequence of ids.
   local address = tostring({}):match("0x(%x+)") or "0"
   math.randomseed(os.time() + tonumber(address:sub(-6), 16))
end

function request()
   return requests[math.random(count)]
end

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
