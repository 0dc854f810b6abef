-- A plain read of some fields of one hash, as a script so that it rides in the batched
-- pipeline with the other calls of its event-loop turn (one round trip, no extra
-- connection). KEYS: 1 the hash; ARGV: the fields.
return redis.call('HMGET', KEYS[1], unpack(ARGV))
