-- Write-behind: set the cache value and append the row to the write-behind stream in one
-- atomic step, so the cache never holds a value whose persistence was not queued.
-- KEYS[1] cache key, KEYS[2] stream (writebehind:{table})
-- ARGV[1] cache value (JSON), ARGV[2] TTL in seconds (> 0), ARGV[3] op (upsert|delete),
-- ARGV[4] row (JSON object), ARGV[5] version ("" = none)
-- Returns the stream entry id.
-- Redis does not roll back a script that fails half-way: check the stream first, so that
-- either both writes happen or neither does.
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'stream' then
  return redis.error_reply('WRONGTYPE write-behind stream ' .. KEYS[2] .. ' holds a ' .. t)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
if ARGV[5] ~= '' then
  return redis.call('XADD', KEYS[2], '*', 'op', ARGV[3], 'row', ARGV[4], 'version', ARGV[5])
end
return redis.call('XADD', KEYS[2], '*', 'op', ARGV[3], 'row', ARGV[4])
