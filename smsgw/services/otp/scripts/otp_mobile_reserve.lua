-- Count one OTP request against the registered mobile's hourly limit, atomically, or say
-- how long to wait; and the mobile's reply language (the same slot), for the SMS. (The
-- card's own limits are otp_request.lua's; a refusal there gives this reservation back:
-- CardStore.release_mobile_request.) A request that will send no SMS reserves on a decoy
-- mobile of its card's, by the same commands.
-- Keys and arguments: ReserveKeys, ReserveArgs (../store.py).
-- Returns {wait (0: reserved), language ('' = none chosen)}

local now = tonumber(A.now)
local language = redis.call('HGET', K.subscriber, 'lang') or ''
redis.call('ZREMRANGEBYSCORE', K.requests, '-inf', now - 3600)
if redis.call('ZCARD', K.requests) >= tonumber(A.max_per_hour) then
  local first = redis.call('ZRANGE', K.requests, 0, 0, 'WITHSCORES')
  return {math.max(1, math.ceil(tonumber(first[2]) + 3600 - now)), language}
end
redis.call('ZADD', K.requests, now, A.request_id)
redis.call('EXPIRE', K.requests, 3600)
return {0, language}
