-- Rate limiting: one call checks (and, unless peeking, consumes) one limiter key. Time comes
-- from Redis TIME, so every client and replica agrees on the clock. Each limiter is one key
-- (a hash or sorted set) with a TTL that ends when its state no longer matters.
--
-- KEYS[1]  the limiter key (docs/ratelimit.md): ratelimit:{user}:requests:<window_ms> for
--          fixed_window, ratelimit:{user}:<algorithm>:<name> for the others
-- ARGV[1]  algorithm: fixed_window | sliding_log | sliding_counter | token_bucket |
--          leaky_bucket | gcra
-- ARGV[2]  limit: requests (cost units) per window, integer >= 1
-- ARGV[3]  window in milliseconds, integer >= 1
-- ARGV[4]  burst: capacity of token_bucket, leaky_bucket and gcra, integer >= 1;
--          "" or "0" = limit (ignored by the window algorithms)
-- ARGV[5]  cost of this request, integer >= 1 and <= the capacity (limit or burst)
-- ARGV[6]  "1" = peek: report what a request of this cost would get, consume nothing
--
-- Returns {allowed (1|0), limit, remaining, retry_after_ms, reset_after_ms}:
--   remaining       what can still be consumed now (after this request when it was allowed)
--   retry_after_ms  0 when allowed, else the wait until this cost would be allowed
--   reset_after_ms  the wait until the limiter is back to its initial, empty state
-- Bad arguments give an error reply starting with "ERR invalid".

local algo = ARGV[1]
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local burst = tonumber(ARGV[4] ~= '' and ARGV[4] or '0')
local cost = tonumber(ARGV[5])
local peek = ARGV[6] == '1'

local function integer(x)
  return x ~= nil and x == math.floor(x) and x < 9007199254740992
end
if not integer(limit) or limit < 1 then
  return redis.error_reply('ERR invalid limit: an integer >= 1 is required')
end
if not integer(window) or window < 1 then
  return redis.error_reply('ERR invalid window: an integer number of ms >= 1 is required')
end
if not integer(burst) or burst < 0 then
  return redis.error_reply('ERR invalid burst: an integer >= 1 is required')
end
if burst == 0 then
  burst = limit
end
local capacity = limit
if algo == 'token_bucket' or algo == 'leaky_bucket' or algo == 'gcra' then
  capacity = burst
end
if not integer(cost) or cost < 1 then
  return redis.error_reply('ERR invalid cost: an integer >= 1 is required')
end
if cost > capacity then
  return redis.error_reply('ERR invalid cost: ' .. cost .. ' is above the capacity ' .. capacity ..
                           ' (it could never be allowed)')
end

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local key = KEYS[1]

-- Numbers go to Redis as text; Lua's own conversion keeps 14 digits only.
local function num(x)
  return string.format('%.0f', x)
end
local function real(x)
  return string.format('%.17g', x)
end
local function ceil_ms(x)
  if x <= 0 then
    return 0
  end
  return math.ceil(x)
end
local function reply(allowed, remaining, retry, reset)
  if remaining < 0 then
    remaining = 0
  end
  if not allowed and retry < 1 then
    retry = 1  -- denied now: never "retry after 0 ms"
  end
  -- The epsilon absorbs float error (4.9999999 units left are 5).
  return {allowed and 1 or 0, limit, math.floor(remaining + 1e-9), ceil_ms(retry), ceil_ms(reset)}
end

if algo == 'fixed_window' then
  -- Windows aligned to the clock: [k*window, (k+1)*window).
  local index = math.floor(now / window)
  local reset = (index + 1) * window - now
  local h = redis.call('HMGET', key, 'w', 'n')
  local used = 0
  if h[1] and tonumber(h[1]) == index then
    used = tonumber(h[2]) or 0
  end
  local ok = used + cost <= limit
  if peek or not ok then
    return reply(ok, limit - used, ok and 0 or reset, used > 0 and reset or 0)
  end
  used = used + cost
  redis.call('HSET', key, 'w', num(index), 'n', num(used))
  redis.call('PEXPIRE', key, num(reset))
  return reply(true, limit - used, 0, reset)

elseif algo == 'sliding_log' then
  -- Exact: one member per unit of cost, scored by its time in microseconds; the window is
  -- (now - window, now].
  local from = now_us - window * 1000
  local used
  if peek then
    used = redis.call('ZCOUNT', key, '(' .. num(from), '+inf')
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', num(from))
    used = redis.call('ZCARD', key)
  end
  local ok = used + cost <= limit
  if peek or not ok then
    local retry = 0
    if not ok then
      -- The entry whose expiry frees enough room: the (used + cost - limit)-th oldest.
      local r = redis.call('ZRANGEBYSCORE', key, '(' .. num(from), '+inf', 'WITHSCORES', 'LIMIT',
                           used + cost - limit - 1, 1)
      retry = (tonumber(r[2]) + window * 1000 - now_us) / 1000
    end
    local reset = 0
    if used > 0 then
      local newest = redis.call('ZREVRANGEBYSCORE', key, '+inf', '(' .. num(from), 'WITHSCORES',
                                'LIMIT', 0, 1)
      reset = (tonumber(newest[2]) + window * 1000 - now_us) / 1000
    end
    return reply(ok, limit - used, retry, reset)
  end
  for i = 1, cost do
    local member = num(now_us) .. '-' .. (used + i)
    while redis.call('ZADD', key, 'NX', num(now_us), member) == 0 do
      member = member .. '+'
    end
  end
  redis.call('PEXPIRE', key, window)
  return reply(true, limit - used - cost, 0, window)

elseif algo == 'sliding_counter' then
  -- Two fixed windows weighted by how much of the previous one the sliding window still
  -- covers: estimate = previous * (window - elapsed) / window + current.
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local h = redis.call('HMGET', key, 'w', 'c', 'p')
  local stored = tonumber(h[1])
  local current, previous = 0, 0
  if stored == index then
    current = tonumber(h[2]) or 0
    previous = tonumber(h[3]) or 0
  elseif stored == index - 1 then
    previous = tonumber(h[2]) or 0
  end
  local weight = (window - elapsed) / window
  local estimate = previous * weight + current
  local ok = estimate + cost <= limit
  local function reset_after(cur, prev)
    if cur > 0 then
      return 2 * window - elapsed
    elseif prev > 0 then
      return window - elapsed
    end
    return 0
  end
  if peek or not ok then
    local retry = 0
    if not ok then
      if current + cost <= limit and previous > 0 then
        -- Still in this window, once the previous one weighs little enough.
        retry = window - (limit - cost - current) * window / previous - elapsed
      else
        -- In the next window, where this one becomes the previous.
        local wait = 0
        if current > 0 then
          wait = window - (limit - cost) * window / current
        end
        retry = window - elapsed + math.max(0, wait)
      end
      if retry < 1 then
        retry = 1
      end
    end
    return reply(ok, limit - estimate, retry, reset_after(current, previous))
  end
  current = current + cost
  redis.call('HSET', key, 'w', num(index), 'c', num(current), 'p', num(previous))
  redis.call('PEXPIRE', key, num(2 * window - elapsed))
  return reply(true, limit - (previous * weight + current), 0, reset_after(current, previous))

elseif algo == 'token_bucket' or algo == 'leaky_bucket' then
  -- token_bucket: `burst` tokens, refilled at limit/window; a request takes `cost` tokens.
  -- leaky_bucket (as a meter): a bucket of `burst` that leaks at limit/window; a request
  -- adds `cost`. The same arithmetic seen from the other side: level = burst - tokens.
  local rate = limit / window  -- per ms
  local h = redis.call('HMGET', key, 'v', 't')
  local level = tonumber(h[1]) or 0  -- how full the meter is (tokens taken)
  local last = tonumber(h[2]) or now
  local elapsed = math.max(0, now - last)
  level = math.max(0, level - elapsed * rate)
  local ok = level + cost <= capacity
  if peek or not ok then
    local retry = 0
    if not ok then
      retry = (level + cost - capacity) / rate
    end
    return reply(ok, capacity - level, retry, level / rate)
  end
  level = level + cost
  local reset = level / rate
  redis.call('HSET', key, 'v', real(level), 't', num(now))
  redis.call('PEXPIRE', key, num(math.max(1, math.ceil(reset))))
  return reply(true, capacity - level, 0, reset)

elseif algo == 'gcra' then
  -- Generic cell rate algorithm: the key holds the theoretical arrival time (TAT, in
  -- microseconds). One unit is due every window/limit; up to `burst` may come at once.
  local interval = window * 1000 / limit  -- us per unit
  local tolerance = interval * capacity
  local tat = tonumber(redis.call('GET', key)) or now_us
  if tat < now_us then
    tat = now_us
  end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - tolerance
  local ok = allow_at <= now_us
  if peek or not ok then
    local retry = 0
    if not ok then
      retry = (allow_at - now_us) / 1000
    end
    return reply(ok, (tolerance - (tat - now_us)) / interval, retry, (tat - now_us) / 1000)
  end
  local reset = (new_tat - now_us) / 1000
  redis.call('SET', key, num(new_tat), 'PX', num(math.max(1, math.ceil(reset))))
  return reply(true, (tolerance - (new_tat - now_us)) / interval, 0, reset)
end

return redis.error_reply('ERR invalid algorithm: ' .. tostring(algo) ..
                         ' (fixed_window, sliding_log, sliding_counter, token_bucket, ' ..
                         'leaky_bucket or gcra)')
