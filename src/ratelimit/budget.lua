-- regate: failed-login budgets (see shared.rs, `Shared::budgets`). The same
-- GCRA state as gcra.lua (a TAT in microseconds of Redis server time per
-- key), but each key is charged on its own: a failure spends a unit of
-- every budget that has one, whatever the others say.
-- ARGV[1]        "check" (read only) or "charge"
-- KEYS[i]        the state of budget i
-- ARGV[2i]       emission interval T of budget i, microseconds (>= 1)
-- ARGV[2i+1]     tolerance tau = T * (burst - 1), microseconds
-- Returns the longest wait, in microseconds, until every budget has a
-- unit again (0: none is spent). After "charge", the wait is the one the
-- next attempt will see.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local charge = ARGV[1] == 'charge'
local longest = 0
for i = 1, #KEYS do
  local t = tonumber(ARGV[2 * i])
  local tau = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  if charge and now >= tat - tau then
    tat = tat + t
    redis.call('SET', KEYS[i], string.format('%.0f', tat),
      'PX', string.format('%.0f', math.ceil((tat - now) / 1000)))
  end
  local wait = tat - tau - now
  if wait > longest then longest = wait end
end
return longest
