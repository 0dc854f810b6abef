-- A message is done (applied, or refused): its ticket leaves its sender's queue.
-- K.queue: the sender's queue; A.ticket
local entries = redis.call('LRANGE', K.queue, 0, -1)
for _, entry in ipairs(entries) do
  if string.sub(entry, 1, #A.ticket + 1) == A.ticket .. '|' then
    redis.call('LREM', K.queue, 1, entry)
    return 1
  end
end
return 0
