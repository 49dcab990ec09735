-- Write-behind: move dead letters back to the stream after the cause was fixed. Each entry
-- goes back with its original fields (without original_id and error) and leaves the
-- dead-letter stream in the same atomic step.
-- KEYS[1] dead-letter stream, KEYS[2] stream; ARGV dead-letter ids
-- Returns { replayed, missing } (ids not found in the dead-letter stream).
local replayed = 0
local missing = 0
for i = 1, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #found == 0 then
    missing = missing + 1
  else
    local f = found[1][2]
    local out = {}
    for j = 1, #f, 2 do
      if f[j] ~= 'original_id' and f[j] ~= 'error' then
        out[#out + 1] = f[j]
        out[#out + 1] = f[j + 1]
      end
    end
    if #out > 0 then
      redis.call('XADD', KEYS[2], '*', unpack(out))
    end
    redis.call('XDEL', KEYS[1], ARGV[i])
    replayed = replayed + 1
  end
end
return { replayed, missing }
