-- Write-behind status of one stream, for metrics and `tierctl wb status`.
-- KEYS[1] stream, KEYS[2] dead-letter stream; ARGV[1] group
-- Returns { length, pending, oldest_pending_age_ms (-1 = none), dead_letters, lag (-1 =
-- unknown or no group) }. The age is measured against Redis TIME, never a client clock.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return { 0, 0, -1, redis.call('XLEN', KEYS[2]), -1 }
end
local len = redis.call('XLEN', KEYS[1])
local dead = redis.call('XLEN', KEYS[2])
local pending = 0
local age = -1
local lag = -1
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local name, glag
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'lag' then glag = g[i + 1] end
  end
  if name == ARGV[1] then
    local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
    pending = summary[1]
    if pending > 0 then
      local t = redis.call('TIME')
      local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      local first_ms = tonumber(string.match(summary[2], '^(%d+)-'))
      age = now_ms - first_ms
      if age < 0 then age = 0 end
    end
    if type(glag) == 'number' then lag = glag end
  end
end
return { len, pending, age, dead, lag }
