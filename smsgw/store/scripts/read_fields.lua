-- A plain read of some fields of one hash, as a script so that it rides in the batched
-- pipeline with the other calls of its event-loop turn (one round trip, no extra
-- connection). K.hash; ARGV: the fields (any number).
return redis.call('HMGET', K.hash, unpack(ARGV))
