-- Write-behind worker: move one entry PostgreSQL rejected for good (or that could not be
-- parsed, or was delivered too often) to the dead-letter stream, with the error, and only
-- then acknowledge and delete it. The alert is published after the durable record exists.
-- KEYS[1] stream, KEYS[2] dead-letter stream
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] error text, ARGV[4] alert channel ("" = none),
-- ARGV[5] alert message (JSON), ARGV[6..] the entry's original field/value pairs
-- Returns the dead-letter entry id.
local fields = { 'original_id', ARGV[2], 'error', ARGV[3] }
for i = 6, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return id
