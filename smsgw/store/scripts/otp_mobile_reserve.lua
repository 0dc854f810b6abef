-- Count one OTP request against the registered mobile's hourly limit, atomically, or say
-- how long to wait. (The card's own limits are otp_request.lua's; a refusal there gives
-- this reservation back: Store.release_mobile_request.)
-- KEYS: 1 mobile request times (zset)
-- ARGV: 1 now (epoch s), 2 request id, 3 max per mobile per hour

local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, math.ceil(tonumber(first[2]) + 3600 - now))
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], 3600)
return 0
