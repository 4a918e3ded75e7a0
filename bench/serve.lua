-- wrk script for bench/serve.sh: each request is a one-click POST (RFC 8058) for a person of
-- its own, so every 200 is a real append and fsync. The links come from $LINKS (one path and
-- query a line, made by bench/serve.sh); thread k of n takes lines k, k+n, k+2n, ...
-- With MODE=get it fetches the confirmation pages instead (no write: the reference).

local links = {}
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local all = {}
  for line in io.lines(os.getenv("LINKS")) do
    all[#all + 1] = line
  end
  local n = tonumber(os.getenv("THREADS"))
  for i = id, #all, n do
    links[#links + 1] = all[i]
  end
  next_link = 1
  method = os.getenv("MODE") == "get" and "GET" or "POST"
end

function request()
  local path = links[next_link]
  next_link = next_link % #links + 1
  if method == "GET" then
    return wrk.format("GET", path)
  end
  return wrk.format("POST", path,
    { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "List-Unsubscribe=One-Click")
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
