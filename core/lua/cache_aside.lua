-- Cache patterns (cache-aside, XFetch early refresh, refresh-ahead, write-through): one cache
-- entry is one hash at the tier key, so every step below touches one key (cluster-safe):
--   v   the value, JSON text
--   d   how long the last load took, in ms (XFetch's delta)
--   l   the token of the caller loading or refreshing it now (single-flight lease)
--   lx  when that lease ends, unix ms
-- The entry's expiry is the key's TTL. Another language reads the value with HGET key v.
-- Time comes from Redis TIME.
--
-- KEYS[1]  the tier key
-- ARGV[1]  action:
--   lookup  ARGV[2] token, ARGV[3] lease ms, ARGV[4] beta (>= 0; 0 = no early refresh),
--           ARGV[5] rand in (0, 1] (XFetch's draw), ARGV[6] refresh-ahead ratio in [0, 1)
--           (0 = none), ARGV[7] the entry's full TTL in ms (for the ratio)
--           -> {"hit", value}            a value, nothing to do
--              {"refresh", value}        a value, and this caller holds the lease to refresh it
--              {"load"}                  no value; this caller holds the lease to load it
--              {"wait", lease_left_ms}   no value; another caller is loading it
--   store   ARGV[2] token, ARGV[3] value, ARGV[4] ttl ms (> 0), ARGV[5] delta ms -> 1
--           (stores the value whoever holds the lease; ends the lease if it is this token's)
--   release ARGV[2] token -> 1 when the lease was this token's (the entry goes if it has no
--           value), else 0

local key = KEYS[1]
local action = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function num(x)
  return string.format('%.0f', x)
end

if action == 'lookup' then
  local token = ARGV[2]
  local lease = tonumber(ARGV[3])
  local beta = tonumber(ARGV[4])
  local rand = tonumber(ARGV[5])
  local ratio = tonumber(ARGV[6])
  local full_ttl = tonumber(ARGV[7])
  if not lease or lease < 1 or not beta or beta < 0 or not rand or rand <= 0 or rand > 1 or
      not ratio or ratio < 0 or ratio >= 1 or not full_ttl or full_ttl < 0 then
    return redis.error_reply('ERR invalid cache_aside lookup arguments')
  end
  local h = redis.call('HMGET', key, 'v', 'd', 'l', 'lx')
  local leased = h[3] and tonumber(h[4]) and tonumber(h[4]) > now
  if h[1] then
    if not leased then
      local ttl = redis.call('PTTL', key)
      local refresh = false
      if ttl >= 0 then
        local expiry = now + ttl
        local delta = tonumber(h[2]) or 0
        -- XFetch (Vattani et al., VLDB 2015): recompute early with a probability that
        -- grows as the expiry nears and with the cost of the recomputation.
        if beta > 0 and delta > 0 and now - delta * beta * math.log(rand) >= expiry then
          refresh = true
        end
        if ratio > 0 and full_ttl > 0 and ttl < ratio * full_ttl then
          refresh = true
        end
      end
      if refresh then
        redis.call('HSET', key, 'l', token, 'lx', num(now + lease))
        return {'refresh', h[1]}
      end
    end
    return {'hit', h[1]}
  end
  if leased then
    return {'wait', num(tonumber(h[4]) - now)}
  end
  redis.call('HSET', key, 'l', token, 'lx', num(now + lease))
  redis.call('PEXPIRE', key, num(lease))
  return {'load'}

elseif action == 'store' then
  local token = ARGV[2]
  local ttl = tonumber(ARGV[4])
  local delta = tonumber(ARGV[5])
  if not ttl or ttl < 1 or not delta or delta < 0 then
    return redis.error_reply('ERR invalid cache_aside store arguments')
  end
  redis.call('HSET', key, 'v', ARGV[3], 'd', num(delta))
  if redis.call('HGET', key, 'l') == token then
    redis.call('HDEL', key, 'l', 'lx')
  end
  redis.call('PEXPIRE', key, num(ttl))
  return 1

elseif action == 'release' then
  if redis.call('HGET', key, 'l') ~= ARGV[2] then
    return 0
  end
  redis.call('HDEL', key, 'l', 'lx')
  if redis.call('HEXISTS', key, 'v') == 0 then
    redis.call('DEL', key)
  end
  return 1
end

return redis.error_reply('ERR invalid action: lookup, store or release')
