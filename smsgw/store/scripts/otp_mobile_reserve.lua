-- Count one OTP request against the registered mobile's hourly limit, atomically, or say
-- how long to wait; and the mobile's reply language (the same slot), for the SMS. (The
-- card's own limits are otp_request.lua's; a refusal there gives this reservation back:
-- Store.release_mobile_request.) A request that will send no SMS reserves on a decoy
-- mobile of its card's, by the same commands.
-- KEYS: 1 mobile request times (zset), 2 the mobile's subscriber hash
-- ARGV: 1 now (epoch s), 2 request id, 3 max per mobile per hour
-- Returns {wait (0: reserved), language ('' = none chosen)}

local now = tonumber(ARGV[1])
local language = redis.call('HGET', KEYS[2], 'lang') or ''
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {math.max(1, math.ceil(tonumber(first[2]) + 3600 - now)), language}
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], 3600)
return {0, language}
