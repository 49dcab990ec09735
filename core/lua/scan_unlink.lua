-- One bounded step of pattern deletion: SCAN from a cursor, UNLINK what matched.
-- KEYS: none (the keys are found by the scan; callers pass the pattern)
-- ARGV[1] cursor ("0" to start), ARGV[2] MATCH pattern, ARGV[3] COUNT hint
-- Returns { next_cursor, deleted } ; next_cursor "0" means the scan is complete.
-- Each step is bounded by COUNT, so Redis is never blocked for long and other
-- clients' commands run between steps.
local res = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', tonumber(ARGV[3]))
local keys = res[2]
local deleted = 0
if #keys > 0 then
  -- unpack() has a stack limit; delete in slices.
  for i = 1, #keys, 1000 do
    local last = math.min(i + 999, #keys)
    deleted = deleted + redis.call('UNLINK', unpack(keys, i, last))
  end
end
return { res[1], deleted }
