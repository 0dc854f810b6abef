-- Keep one part of a concatenated inbound message; once every part is in, return the
-- whole. A part is durable before it is acknowledged, and the parts stay until the
-- gateway has applied the command they form (Store.forget_parts), so a failure after
-- reassembly loses nothing: the SMSC's redelivery of the part finds the others again.
-- K.parts: a hash ('t' total, 'id' the message's id, '<n>' texts); K.open: the sender's
-- incomplete messages (a zset: parts key -> when it expires, ms). Keys and arguments:
-- AddPartKeys, AddPartArgs (../shared.py).
-- -> {'partial'} | {'whole', id, text 1, ..., text n} | {'too_many'} | {'total_changed'}
local number, total, ttl = A.number, tonumber(A.total), tonumber(A.ttl)
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', K.open, '-inf', now_ms)  -- those whose parts expired
local known_total = redis.call('HGET', K.parts, 't')
if not known_total then
  if redis.call('ZCARD', K.open) >= tonumber(A.most_open) then return {'too_many'} end
  redis.call('HSET', K.parts, 't', A.total, 'id', A.message_id)
  -- a fixed time after the first part, however many parts come later
  redis.call('EXPIRE', K.parts, ttl)
  redis.call('ZADD', K.open, now_ms + ttl * 1000, K.parts)
  redis.call('EXPIRE', K.open, ttl)  -- this message expires last of the sender's
elseif tonumber(known_total) ~= total then
  return {'total_changed'}
end
redis.call('HSET', K.parts, number, A.text)
if redis.call('HLEN', K.parts) < total + 2 then return {'partial'} end
local parts = {'whole', redis.call('HGET', K.parts, 'id')}
for n = 1, total do
  local text = redis.call('HGET', K.parts, tostring(n))
  if not text then return {'partial'} end
  parts[n + 2] = text
end
return parts
