-- Finish a reservation of idempotency_reserve.lua, if this owner still holds it (its
-- lease may have lapsed and another request taken the key): keep the answer for the
-- key's lifetime, or ('' answer) give the key back, for an answer that is not kept.
-- Returns 1 if this owner held it, else 0
if redis.call('HGET', K.record, 'owner') ~= A.owner
   or redis.call('HGET', K.record, 'state') ~= 'pending' then
  return 0
end
if A.answer == '' then
  redis.call('DEL', K.record)
  return 1
end
redis.call('HSET', K.record, 'state', 'done', 'answer', A.answer)
redis.call('EXPIRE', K.record, tonumber(A.lifetime_seconds))
return 1
