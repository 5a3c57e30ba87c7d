-- wrk script for bench/bridge.py. Arguments: RUN PATH PAUSE_MS. PATH /v1/jobs makes every request a new job (its
-- own wallet, seed and idempotency key), any other path is a GET. PAUSE_MS > 0 makes each connection a client
-- that waits that long before each request (a steady offered load); 0 sends back to back (capacity).
-- Counts the answers by status and prints one JSON line of results at the end.
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  run = args[1] or "run"
  path = args[2] or "/v1/jobs"
  pause_ms = tonumber(args[3] or "0")
  counter = 0
  statuses = {}
end

function request()
  if path ~= "/v1/jobs" then
    return wrk.format("GET", path)
  end
  counter = counter + 1
  local n = tostring(tid * 10000000 + counter)
  -- decimal digits are hex digits too: a valid, distinct wallet per request
  local wallet = "0x" .. string.rep("0", 40 - #n) .. n
  local body = '{"settings": {"seed": ' .. (counter % 1000000) .. '}, "wallet": "' .. wallet .. '"}'
  local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = run .. "-" .. n}
  return wrk.format("POST", path, headers, body)
end

function delay()
  if pause_ms > 0 then
    return math.random(math.floor(pause_ms / 2), math.floor(pause_ms * 3 / 2))  -- jittered: clients not in step
  end
  return 0
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
    table.insert(parts, '"' .. status .. '": ' .. n)
  end
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %.3f, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "socket_errors": %d, "statuses": {%s}}\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ", ")))
end
