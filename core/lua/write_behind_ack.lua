-- Write-behind worker: acknowledge entries committed to PostgreSQL and remove them from
-- the stream. Only acknowledged entries are deleted, so pending work is never trimmed.
-- KEYS[1] stream; ARGV[1] group; ARGV[2..] entry ids
-- Returns { acknowledged, deleted }.
local acked = 0
local deleted = 0
for i = 2, #ARGV, 1000 do
  local last = math.min(i + 999, #ARGV)
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, last))
  deleted = deleted + redis.call('XDEL', KEYS[1], unpack(ARGV, i, last))
end
return { acked, deleted }
