-- A message is done (applied, or refused): its ticket leaves its sender's queue.
-- KEYS: 1 the sender's queue; ARGV: 1 ticket
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for _, entry in ipairs(entries) do
  if string.sub(entry, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    redis.call('LREM', KEYS[1], 1, entry)
    return 1
  end
end
return 0
