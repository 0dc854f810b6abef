-- Finish a reservation of idempotency_reserve.lua, if this owner still holds it (its
-- lease may have lapsed and another request taken the key): keep the answer for the
-- key's lifetime, or ('' answer) give the key back, for an answer that is not kept.
-- KEYS: 1 the key's record
-- ARGV: 1 owner token, 2 answer ('' = release), 3 lifetime (s)
-- Returns 1 if this owner held it, else 0
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
   or redis.call('HGET', KEYS[1], 'state') ~= 'pending' then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'done', 'answer', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
