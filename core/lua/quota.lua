-- Quotas: daily and monthly usage counters of one user and metric, their limits, and the
-- warnings published when usage crosses a threshold of a limit. Periods are UTC days
-- (YYYY-MM-DD) and months (YYYY-MM) of Redis TIME, or of the time given in ARGV[9].
--
-- KEYS[1]  the metric's base key quota:{user}:<metric>; the script reads and writes
--          <base>:<period> (the counters) and <base>:<period>:warned:<threshold> (a
--          warning was published; its value is the warning), which share its hash tag
-- KEYS[2]  ratelimit:{user}:daily_limit   (per-user override of the daily limit)
-- KEYS[3]  ratelimit:{user}:monthly_limit (per-user override of the monthly limit)
-- ARGV[1]  action: incr | usage | reset
-- ARGV[2]  amount to add (incr), integer >= 0
-- ARGV[3]  daily limit from the caller, integer >= 0 (0 = none); the override wins
-- ARGV[4]  monthly limit from the caller, likewise
-- ARGV[5]  "1" = enforce: an increment that would pass a limit is refused, nothing counted
-- ARGV[6]  thresholds, comma-separated ratios in (0, 10] (e.g. "0.8,0.9,1"); "" = none
-- ARGV[7]  warning channel ("" = do not publish) and ARGV[8] the warning's user_id and
--          metric as "<user_id>\n<metric>" (for the message)
-- ARGV[9]  time as unix milliseconds ("" = Redis TIME)
-- ARGV[10] seconds the counters live past their period's end (>= 0)
--
-- Returns {allowed (1|0), day, daily_used, daily_limit, month, monthly_used, monthly_limit,
-- {warning JSON, ...}}; a limit of 0 means none. reset returns the same, after deleting
-- the current periods' counters and warning markers.

local base = KEYS[1]
local action = ARGV[1]
local amount = tonumber(ARGV[2])
local enforce = ARGV[5] == '1'
local channel = ARGV[7]
local margin = tonumber(ARGV[10])

local function integer(x)
  return x ~= nil and x == math.floor(x) and x >= 0 and x < 9007199254740992
end
if action ~= 'incr' and action ~= 'usage' and action ~= 'reset' then
  return redis.error_reply('ERR invalid action: incr, usage or reset')
end
if not integer(amount) then
  return redis.error_reply('ERR invalid amount: an integer >= 0 is required')
end
if not integer(margin) then
  return redis.error_reply('ERR invalid margin: an integer number of seconds >= 0 is required')
end

local function limit_of(override_key, given)
  local v = redis.call('GET', override_key)
  if v then
    local n = tonumber(v)
    if not integer(n) then
      return nil, 'ERR invalid limit in ' .. override_key .. ': an integer >= 0 is required'
    end
    return n
  end
  local n = tonumber(given)
  if not integer(n) then
    return nil, 'ERR invalid limit: an integer >= 0 is required'
  end
  return n
end
local daily_limit, e1 = limit_of(KEYS[2], ARGV[3])
if not daily_limit then
  return redis.error_reply(e1)
end
local monthly_limit, e2 = limit_of(KEYS[3], ARGV[4])
if not monthly_limit then
  return redis.error_reply(e2)
end

local thresholds = {}
for th in string.gmatch(ARGV[6], '[^,]+') do
  local x = tonumber(th)
  if not x or x <= 0 or x > 10 then
    return redis.error_reply('ERR invalid threshold ' .. th .. ': a ratio in (0, 10]')
  end
  table.insert(thresholds, {text = th, value = x})
end

-- The time, as seconds since the epoch (UTC).
local now
if ARGV[9] ~= '' then
  now = tonumber(ARGV[9])
  if not integer(now) then
    return redis.error_reply('ERR invalid time: unix milliseconds >= 0 are required')
  end
  now = math.floor(now / 1000)
else
  now = tonumber(redis.call('TIME')[1])
end

-- Civil dates from days since 1970-01-01 and back (H. Hinnant's algorithms).
local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) -
                          math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local today = math.floor(now / 86400)
local y, m, d = civil(today)
local periods = {
  {name = 'daily', key = string.format('%04d-%02d-%02d', y, m, d), limit = daily_limit,
   ends = (today + 1) * 86400},
  {name = 'monthly', key = string.format('%04d-%02d', y, m), limit = monthly_limit,
   ends = days_from_civil(m == 12 and y + 1 or y, m == 12 and 1 or m + 1, 1) * 86400},
}
for _, p in ipairs(periods) do
  p.counter = base .. ':' .. p.key
  p.used = tonumber(redis.call('GET', p.counter)) or 0
end

local function result(allowed, warnings)
  return {allowed and 1 or 0, periods[1].key, periods[1].used, periods[1].limit, periods[2].key,
          periods[2].used, periods[2].limit, warnings}
end

if action == 'usage' then
  return result(true, {})
end
if action == 'reset' then
  for _, p in ipairs(periods) do
    redis.call('DEL', p.counter)
    for _, th in ipairs(thresholds) do
      redis.call('DEL', p.counter .. ':warned:' .. th.text)
    end
    p.used = 0
  end
  return result(true, {})
end

if enforce then
  for _, p in ipairs(periods) do
    if p.limit > 0 and p.used + amount > p.limit then
      return result(false, {})
    end
  end
end

local user_id, metric = string.match(ARGV[8], '^(.-)\n(.*)$')
local warnings = {}
for _, p in ipairs(periods) do
  if amount > 0 then
    p.used = redis.call('INCRBY', p.counter, string.format('%.0f', amount))
  end
  if p.used > 0 then
    -- Relative to the script's time, so that a time given in ARGV[9] keeps its keys too.
    redis.call('EXPIRE', p.counter, string.format('%.0f', p.ends + margin - now))
  end
  if p.limit > 0 then
    local ratio = p.used / p.limit
    for _, th in ipairs(thresholds) do
      -- Once per user, metric, period and threshold, however many callers cross it at once:
      -- the marker is set with NX, and only the caller that set it publishes.
      if ratio >= th.value then
        local marker = p.counter .. ':warned:' .. th.text
        local id = 'quota:' .. user_id .. ':' .. metric .. ':' .. p.key .. ':' .. th.text
        local warning = cjson.encode({
          id = id, user_id = user_id, metric = metric, period = p.name, period_key = p.key,
          used = p.used, limit = p.limit, ratio = ratio, threshold = th.value})
        if redis.call('SET', marker, warning, 'NX', 'EX', string.format('%.0f', p.ends - now)) then
          if channel ~= '' then
            redis.call('PUBLISH', channel, warning)
          end
          table.insert(warnings, warning)
        end
      end
    end
  end
end
return result(true, warnings)
