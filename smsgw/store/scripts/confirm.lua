-- Drop the redelivery candidates of safely answered messages, many in one call.
-- KEYS[i] a candidates hash, ARGV[i] the field to drop from it (and its chain of
-- sessions, if a redelivery carried it on: _prelude.lua, CHAIN_MARK).
for i = 1, #KEYS do
  redis.call('HDEL', KEYS[i], ARGV[i], ARGV[i] .. CHAIN_MARK)
end
return #KEYS
