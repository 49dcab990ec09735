-- Write-behind worker: acknowledge entries committed to PostgreSQL, then trim the stream
-- below the first entry any consumer group still needs (its oldest pending entry, or the
-- first one not yet delivered to it). Pending work is never trimmed, and trimming whole
-- listpack nodes costs Redis far less than XDEL of every entry.
-- KEYS[1] stream; ARGV[1] group; ARGV[2..] entry ids
-- Returns { acknowledged, trimmed }.
local acked = 0
for i = 2, #ARGV, 1000 do
  local last = math.min(i + 999, #ARGV)
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, last))
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(x, y)
  local a1, b1 = parse(x)
  local a2, b2 = parse(y)
  return a1 < a2 or (a1 == a2 and b1 < b2)
end

local keep = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, last, pending
  for i = 1, #g, 2 do
    if g[i] == 'name' then
      name = g[i + 1]
    elseif g[i] == 'last-delivered-id' then
      last = g[i + 1]
    elseif g[i] == 'pending' then
      pending = g[i + 1]
    end
  end
  local ms, seq = parse(last)
  local need = string.format('%.0f-%.0f', ms, seq + 1)
  if pending > 0 then
    local oldest = redis.call('XPENDING', KEYS[1], name, '-', '+', 1)
    if #oldest > 0 and less(oldest[1][1], need) then
      need = oldest[1][1]
    end
  end
  if keep == nil or less(need, keep) then
    keep = need
  end
end
local trimmed = 0
if keep ~= nil then
  trimmed = redis.call('XTRIM', KEYS[1], 'MINID', keep)
end
return { acked, trimmed }
