-- Write-behind worker: read new entries for a consumer (XREADGROUP >, never blocking) and
-- return them as ONE length-prefixed string instead of a reply tree of ~15 objects per
-- entry, which dominated the reader's CPU. When nothing is new, returns the stream's last
-- id so that the caller can wait (XREAD BLOCK from that id) without consuming anything.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] count
-- Returns { n, payload } where payload is, per entry, "<id> <items>\n" then each field name
-- and value as "<length>:<bytes>"; or { 0, last_id } when there is nothing new.
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', KEYS[1], '>')
if not r then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last > 0 then
    return { 0, last[1][1] }
  end
  return { 0, '0-0' }
end
local entries = r[1][2]
local out = {}
for _, e in ipairs(entries) do
  local f = e[2]
  out[#out + 1] = e[1] .. ' ' .. #f .. '\n'
  for j = 1, #f do
    out[#out + 1] = #f[j] .. ':' .. f[j]
  end
end
return { #entries, table.concat(out) }
