-- Keep one part of a concatenated inbound message; once every part is in, return the
-- whole. A part is durable before it is acknowledged, and the parts stay until the
-- gateway has applied the command they form (Store.forget_parts), so a failure after
-- reassembly loses nothing: the SMSC's redelivery of the part finds the others again.
-- KEYS[1] the message's parts (a hash: 't' total, 'id' the message's id, '<n>' texts)
-- KEYS[2] the sender's incomplete messages (a zset: parts key -> when it expires, ms)
-- ARGV: 1 part number, 2 total parts, 3 text, 4 ttl (s), 5 most incomplete messages
--       per sender, 6 the message's id if this part is its first
-- -> {'partial'} | {'whole', id, text 1, ..., text n} | {'too_many'} | {'total_changed'}
local number, total, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)  -- those whose parts expired
local known_total = redis.call('HGET', KEYS[1], 't')
if not known_total then
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return {'too_many'} end
  redis.call('HSET', KEYS[1], 't', ARGV[2], 'id', ARGV[6])
  -- a fixed time after the first part, however many parts come later
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], now_ms + ttl * 1000, KEYS[1])
  redis.call('EXPIRE', KEYS[2], ttl)  -- this message expires last of the sender's
elseif tonumber(known_total) ~= total then
  return {'total_changed'}
end
redis.call('HSET', KEYS[1], number, ARGV[3])
if redis.call('HLEN', KEYS[1]) < total + 2 then return {'partial'} end
local whole = {'whole', redis.call('HGET', KEYS[1], 'id')}
for n = 1, total do
  local text = redis.call('HGET', KEYS[1], tostring(n))
  if not text then return {'partial'} end
  whole[n + 2] = text
end
return whole
