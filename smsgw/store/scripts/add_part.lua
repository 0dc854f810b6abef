-- Keep one part of a concatenated inbound message; when the last part arrives, return
-- all texts in order and forget them. A part is durable before it is acknowledged.
-- KEYS[1] the parts hash   ARGV: 1 part number, 2 total parts, 3 text, 4 ttl (s)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local total = tonumber(ARGV[2])
if redis.call('HLEN', KEYS[1]) < total then return false end
local texts = {}
for number = 1, total do
  local text = redis.call('HGET', KEYS[1], tostring(number))
  if not text then return false end
  texts[number] = text
end
redis.call('DEL', KEYS[1])
return texts
