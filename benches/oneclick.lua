-- wrk script of benches/subscribers.py: RFC 8058 one-click POSTs, each to
-- the URL of another subscriber (a token a line in the file named by the
-- environment's ONECLICK_TOKENS; ONECLICK_FIRST and ONECLICK_COUNT pick the
-- slice of this run). Thread i of ONECLICK_THREADS (wrk's -t) takes tokens
-- i, i + n, i + 2n... of the slice, so no two requests name the same
-- subscriber; a thread that has used up its share stops. done() prints the
-- figures as one JSON line.
--
-- wrk starts each thread as soon as it is set up, before setting up the
-- next, so the number of threads comes from the environment, not from
-- counting setup() calls.

local thread_count = 0

function setup(thread)
  thread:set("index", thread_count)
  thread_count = thread_count + 1
end

local tokens = {}
local next_token
local sent = 0

function init(args)
  local first = tonumber(os.getenv("ONECLICK_FIRST"))
  local count = tonumber(os.getenv("ONECLICK_COUNT"))
  local line_number = 0
  for line in io.lines(os.getenv("ONECLICK_TOKENS")) do
    if line_number >= first and line_number < first + count then
      table.insert(tokens, line)
    end
    line_number = line_number + 1
  end
  stride = tonumber(os.getenv("ONECLICK_THREADS"))
  next_token = index + 1
end

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local body = "List-Unsubscribe=One-Click"

function request()
  local token = tokens[next_token]
  if token == nil then
    -- This thread's share is used up: stop, and send nothing new (the
    -- request returned now is never answered by a counted response).
    wrk.thread:stop()
    token = tokens[index + 1]
  else
    next_token = next_token + stride
    sent = sent + 1
  end
  return wrk.format("POST", "/unsubscribe/" .. token, headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"latency_p50_us": %d, "latency_p99_us": %d, "latency_max_us": %d}\n',
    summary.requests, summary.duration, errors.status, errors.connect,
    errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
