-- Distributed locks with fencing tokens (docs/locks.md). A lock is one key holding the
-- holder's random token with a lease (PX); its fence is a counter beside it that only
-- grows. Both share the lock's hash tag: lock:{name} and lock:{name}:fence (braces literal).
--
-- KEYS[1]  lock:{name}
-- KEYS[2]  lock:{name}:fence
-- ARGV[1]  action:
--   acquire  ARGV[2] token, ARGV[3] lease ms (>= 1)
--            -> {1, fence, lease_ms}  acquired, with a fencing token greater than every earlier one
--            -> {0, 0, ttl_ms}        held by another holder for ttl_ms more
--   extend   ARGV[2] token, ARGV[3] lease ms -> 1 extended, 0 not held by this token
--   release  ARGV[2] token, ARGV[4] notice channel ("" = none) -> 1 released, 0 not held
--            by this token (a release notice wakes waiters early)
--   status   -> {held (1|0), ttl_ms, last fence}

local action = ARGV[1]
local lock = KEYS[1]
local fence = KEYS[2]

if action == 'acquire' or action == 'extend' then
  local lease = tonumber(ARGV[3])
  if not lease or lease < 1 or lease ~= math.floor(lease) then
    return redis.error_reply('ERR invalid lease: an integer number of ms >= 1 is required')
  end
  if action == 'extend' then
    if redis.call('GET', lock) ~= ARGV[2] then
      return 0
    end
    redis.call('PEXPIRE', lock, lease)
    return 1
  end
  if redis.call('SET', lock, ARGV[2], 'NX', 'PX', lease) then
    return {1, redis.call('INCR', fence), lease}
  end
  return {0, 0, redis.call('PTTL', lock)}
elseif action == 'release' then
  if redis.call('GET', lock) ~= ARGV[2] then
    return 0
  end
  redis.call('DEL', lock)
  if ARGV[4] and ARGV[4] ~= '' then
    redis.call('PUBLISH', ARGV[4], 'released')
  end
  return 1
elseif action == 'status' then
  local ttl = redis.call('PTTL', lock)
  return {ttl >= 0 and 1 or 0, ttl >= 0 and ttl or 0, tonumber(redis.call('GET', fence)) or 0}
end
return redis.error_reply('ERR invalid action: acquire, extend, release or status')
