-- Drop replies the SMSC took (or refused for good, or that expired), many in one call.
-- KEYS: the three keys of each outbox shard in turn (OutboxKeys' order: entries,
-- owners, times); ARGV[i]: the reply ids of the i-th shard, separated by spaces.
local removed = 0
for i = 1, #ARGV do
  local entries, owners, times = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  for reply in string.gmatch(ARGV[i], '%S+') do
    removed = removed + redis.call('HDEL', entries, reply)
    redis.call('HDEL', owners, reply)
    redis.call('ZREM', times, reply)
  end
end
return removed
