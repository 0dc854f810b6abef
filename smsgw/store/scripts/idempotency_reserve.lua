-- Reserve an Idempotency-Key for one request (transport/idempotency.py), or find what
-- it holds: the key's record is its own slot, apart from the card's, so the work is not
-- in this call: a "pending" record (with a lease: the whole record lapses if its owner
-- dies before finishing) stands for the work in progress, then "done" with the answer.
-- Returns {"reserved"} | {"mismatch"} | {"pending"} | {"done", answer}
local found = redis.call('HMGET', K.record, 'fingerprint', 'state', 'answer')
if not found[1] then
  redis.call('HSET', K.record, 'fingerprint', A.fingerprint, 'state', 'pending', 'owner', A.owner)
  redis.call('EXPIRE', K.record, tonumber(A.lease_seconds))
  return {'reserved'}
end
if found[1] ~= A.fingerprint then return {'mismatch'} end
if found[2] == 'done' then return {'done', found[3]} end
return {'pending'}
