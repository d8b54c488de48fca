-- The seed mix for wrk2 (benchmarks/wrk_crosscheck.py): the same pre-encoded requests benchmarks/_mix.py
-- sends, read from a plan file that wrk_crosscheck.py writes for the exchange's URL; a cancel takes one of
-- the resting order ids learnt from earlier 201 answers (at random, then forgotten), or, with none known
-- yet, the next limit order goes instead, as in _mix.py. Answers are counted by class (2xx, 503, 429, other)
-- from the Unix second COUNT_FROM on, until COUNT_UNTIL (default: all), so that a window of wrk2's run can be
-- read apart from its ramp.
--
-- Usage: wrk2 -t1 -c1000 -d20s -R8000 --latency -s benchmarks/wrk_seed_mix.lua http://HOST:PORT -- PLAN.lua
--        [COUNT_FROM [COUNT_UNTIL]]

local plan, kinds, limits = {}, {}, {}
local n, i = 0, 0
local resting, nresting = {}, 0
local cancel_head, cancel_tail = "DELETE /api/orders/", ""
sent_limit, sent_market, sent_cancel, sent_book, answered_409, answered_404 = 0, 0, 0, 0, 0, 0
counted_2xx, counted_503, counted_429, counted_other = 0, 0, 0, 0
local count_from, count_until = 0, math.huge

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local loaded = dofile(args[1])
  plan, kinds = loaded.requests, loaded.kinds
  cancel_tail = " HTTP/1.1\r\nHost: " .. loaded.host .. "\r\n\r\n"
  n = #plan
  for k = 1, n do
    if kinds[k] == "limit" then
      table.insert(limits, plan[k])
    end
  end
  count_from = tonumber(args[2] or "0")
  count_until = args[3] and tonumber(args[3]) or math.huge
  math.randomseed(11)
end

function request()
  i = i % n + 1
  local kind = kinds[i]
  if kind == "cancel" then
    if nresting > 0 then
      local at = math.random(nresting)
      local id = resting[at]
      resting[at] = resting[nresting]
      resting[nresting] = nil
      nresting = nresting - 1
      sent_cancel = sent_cancel + 1
      return cancel_head .. id .. cancel_tail
    end
    sent_limit = sent_limit + 1
    return limits[i % #limits + 1]
  end
  if kind == "limit" then
    sent_limit = sent_limit + 1
  elseif kind == "market" then
    sent_market = sent_market + 1
  else
    sent_book = sent_book + 1
  end
  return plan[i]
end

function response(status, headers, body)
  local now = os.time()
  if now >= count_from and now < count_until then
    if status >= 200 and status < 300 then
      counted_2xx = counted_2xx + 1
    elseif status == 503 then
      counted_503 = counted_503 + 1
    elseif status == 429 then
      counted_429 = counted_429 + 1
    else
      counted_other = counted_other + 1
    end
  end
  if status == 201 then
    local id = body:match('^{"id":(%d+),')
    if id and (body:find('"status":"new"', 1, true) or body:find('"status":"partially_filled"', 1, true)) then
      nresting = nresting + 1
      resting[nresting] = id
    end
  elseif status == 409 then
    answered_409 = answered_409 + 1
  elseif status == 404 then
    answered_404 = answered_404 + 1
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format(
      "seed mix sent: limit %d market %d cancel %d book %d; cancels answered 409 %d, 404 %d\n",
      t:get("sent_limit"), t:get("sent_market"), t:get("sent_cancel"), t:get("sent_book"),
      t:get("answered_409"), t:get("answered_404")))
    io.write(string.format(
      "answers counted: 2xx %d 503 %d 429 %d other %d\n",
      t:get("counted_2xx"), t:get("counted_503"), t:get("counted_429"), t:get("counted_other")))
  end
end
