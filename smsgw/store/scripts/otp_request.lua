-- Issue a one-time password for a card, atomically, within the resend and hourly limits.
-- The limits count every accepted request, for unknown, foreign, disabled and blocked
-- cards too, so that a refusal reveals nothing. When no SMS may be sent (unknown card,
-- not ours, not active, or an SMS request from another mobile), a "silent" request record
-- is kept that expires and voids like a real one, so /v1/otp/verify reveals nothing either.
--
-- KEYS: 1 card hash, 2 card request times (zset), 3 mobile request times (zset),
--       4 request record (q:{rid}), 5 card history, 6 the card's latest silent request id
-- ARGV: 1 now (epoch s), 2 request id, 3 OTP digest, 4 amount ('' = bound to the card
--       alone), 5 merchant, 6 ttl, 7 resend gap, 8 max per card per hour,
--       9 max per mobile per hour, 10 card is ours (1/0), 11 mobile known (1/0),
--       12 moment (ISO), 13 history length, 14 card hash, 15 requesting mobile ('' = the
--       payment system)

local now = tonumber(ARGV[1])
local hour_ago = now - 3600

local function wait_in(key, max_per_hour, gap)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', hour_ago)
  local wait = 0
  if gap > 0 then
    local last = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')
    if #last > 0 then wait = math.max(wait, tonumber(last[2]) + gap - now) end
  end
  if redis.call('ZCARD', key) >= max_per_hour then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(first[2]) + 3600 - now)
  end
  return wait
end

local wait = wait_in(KEYS[2], tonumber(ARGV[8]), tonumber(ARGV[7]))
if ARGV[11] == '1' then wait = math.max(wait, wait_in(KEYS[3], tonumber(ARGV[9]), 0)) end
if wait > 0 then return cjson.encode({status = 'rate_limited', wait = math.ceil(wait)}) end

redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[2], 3600)
if ARGV[11] == '1' then
  redis.call('ZADD', KEYS[3], now, ARGV[2])
  redis.call('EXPIRE', KEYS[3], 3600)
end

local ttl = tonumber(ARGV[6])
local expires = now + ttl
local card = redis.call('HMGET', KEYS[1], 'state', 'mobile', 'last4')
local deliverable = ARGV[10] == '1' and card[1] == 'active'
  and (ARGV[15] == '' or ARGV[15] == card[2])
if not deliverable then
  redis.call('HSET', KEYS[4], 'card', ARGV[14], 'silent', '1', 'expires', expires,
             'attempts', 0, 'state', 'live')
  redis.call('EXPIRE', KEYS[4], 3600)
  redis.call('SET', KEYS[6], ARGV[2], 'EX', 3600)
  return cjson.encode({status = 'silent'})
end

redis.call('HSET', KEYS[1], 'rid', ARGV[2], 'otp', ARGV[3], 'amount', ARGV[4],
           'merchant', ARGV[5], 'expires', expires, 'attempts', 0, 'otp_state', 'live')
redis.call('HSET', KEYS[4], 'card', ARGV[14], 'silent', '0')
redis.call('EXPIRE', KEYS[4], 3600)
local entry = {kind = 'otp_issued', at = ARGV[12], request = ARGV[2],
               by = (ARGV[15] == '' and 'payment' or 'sms')}
if ARGV[4] ~= '' then
  entry.amount = tonumber(ARGV[4])
  entry.merchant = ARGV[5]
end
redis.call('LPUSH', KEYS[5], cjson.encode(entry))
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[13]) - 1)
return cjson.encode({status = 'issued', mobile = card[2], last4 = card[3]})
