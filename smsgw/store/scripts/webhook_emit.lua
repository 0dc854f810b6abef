-- Append one webhook event to its request's queue, in order, and make the request due
-- for delivery (workers/webhooks.py), atomically. Only a registered request that sent an
-- SMS gets events; a closing event (verified, voided, expired) only while the request
-- is open, and it closes it (and leaves the expiry index): one verdict per request.
-- otp.sent, and one receipt event (otp.delivered or otp.failed: the first final receipt),
-- at most once per request: an OTP SMS of two parts gets a receipt for each part, and a
-- re-sent SMS is accepted again, yet each is one change of the request.
-- Returns 1 if an event was appended, else 0
local closes = A.closes == '1'
if closes then redis.call('ZREM', K.expiries, A.request_id) end
local request = redis.call('HMGET', K.registration, 'last4', 'state')
if not request[1] then return 0 end
local once = ({['otp.sent'] = 'sent', ['otp.delivered'] = 'receipt',
               ['otp.failed'] = 'receipt'})[A.kind]
if once and redis.call('HSETNX', K.registration, once, A.kind) == 0 then return 0 end
if closes then
  if request[2] ~= 'open' then return 0 end
  redis.call('HSET', K.registration, 'state', 'closed')
end
local event = cjson.encode({id = A.event_id, type = A.kind, request_id = A.request_id, at = A.at,
                            card_last4 = request[1], detail = cjson.decode(A.detail)})
redis.call('RPUSH', K.queue, event)
redis.call('ZADD', K.due, 'NX', tonumber(A.now), A.request_id)
redis.call('EXPIRE', K.registration, tonumber(A.lifetime_seconds))
return 1
