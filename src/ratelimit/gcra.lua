-- regate: one atomic GCRA decision over several limits (see shared.rs).
-- KEYS[i]        the state of limit i: its theoretical arrival time (TAT),
--                in microseconds of Redis server time
-- ARGV[2i-1]     emission interval T of limit i, microseconds (>= 1)
-- ARGV[2i]       tolerance tau = T * (burst - 1), microseconds
-- Returns {allowed, remaining_1, micros_1, ..., remaining_n, micros_n}:
-- allowed = 1: every TAT advanced by T; micros_i = time until limit i is
--              full again; remaining_i = tokens left in it.
-- allowed = 0: nothing written (a denied request spends no token of any
--              limit); micros_i = wait until limit i would allow (0 if it
--              was not a denier).
-- Redis server time is used so gateways with skewed clocks agree; keys
-- expire once their bucket is full again, so idle keys cost no memory.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n = #KEYS
local tats = {}
local allowed = 1
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  tats[i] = tat
  if now < tat - tonumber(ARGV[2 * i]) then allowed = 0 end
end
local out = {allowed}
for i = 1, n do
  local t = tonumber(ARGV[2 * i - 1])
  local tau = tonumber(ARGV[2 * i])
  local tat = tats[i]
  if allowed == 1 then
    local new = tat + t
    redis.call('SET', KEYS[i], string.format('%.0f', new),
      'PX', string.format('%.0f', math.ceil((new - now) / 1000)))
    out[#out + 1] = math.floor((now + tau - tat) / t)
    out[#out + 1] = new - now
  else
    local wait = tat - tau - now
    if wait < 0 then wait = 0 end
    out[#out + 1] = math.max(0, math.floor((now + tau + t - tat) / t))
    out[#out + 1] = wait
  end
end
return out
