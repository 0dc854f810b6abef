-- Keep replies until the SMSC takes them (transport/outbox.py), in one outbox shard.
-- K: OutboxKeys (../outbox.py). ARGV, a variable number: the owner (the gateway that
-- sends them), the time (ms), then pairs of reply id and its JSON. A reply id written
-- again (the same reply decided again: a redelivery) keeps its first time.
local owner, created = ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  redis.call('HSET', K.entries, ARGV[i], ARGV[i + 1])
  redis.call('HSET', K.owners, ARGV[i], owner)
  redis.call('ZADD', K.times, 'NX', created, ARGV[i])
end
return (#ARGV - 2) / 2
