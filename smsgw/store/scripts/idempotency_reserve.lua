-- Reserve an Idempotency-Key for one request (transport/idempotency.py), or find what
-- it holds: the key's record is its own slot, apart from the card's, so the work is not
-- in this call: a "pending" record (with a lease: the whole record lapses if its owner
-- dies before finishing) stands for the work in progress, then "done" with the answer.
-- KEYS: 1 the key's record (a hash)
-- ARGV: 1 the request's fingerprint (route and body, hashed), 2 owner token,
--       3 lease (s)
-- Returns {"reserved"} | {"mismatch"} | {"pending"} | {"done", answer}
local found = redis.call('HMGET', KEYS[1], 'fingerprint', 'state', 'answer')
if not found[1] then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'state', 'pending', 'owner', ARGV[2])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  return {'reserved'}
end
if found[1] ~= ARGV[1] then return {'mismatch'} end
if found[2] == 'done' then return {'done', found[3]} end
return {'pending'}
