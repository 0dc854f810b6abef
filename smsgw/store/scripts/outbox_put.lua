-- Keep replies until the SMSC takes them (transport/outbox.py), in one outbox shard.
-- K: OutboxKeys (../outbox.py). ARGV, a variable number: the owner (the gateway that
-- sends them), the time (ms), then pairs of reply id and its JSON. A reply id written
-- again (the same reply decided again: a redelivery) keeps its first time.
-- The time is the store's own clock (ARGV's is the gateway's, kept for nothing else): a
-- successor reckons what is left of a reply's validity on the same clock (outbox_claim).
local owner = ARGV[1]
local created = clock_ms()
for i = 3, #ARGV, 2 do
  outbox_keep(K.entries, K.owners, K.times, ARGV[i], ARGV[i + 1], owner, created)
end
return (#ARGV - 2) / 2
