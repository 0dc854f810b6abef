-- Issue a one-time password for a card, atomically, within the card's resend and hourly
-- limits (the mobile's limit is reserved before: otp_mobile_reserve.lua). The limits
-- count every accepted request, for unknown, foreign, disabled and blocked cards too, so
-- that a refusal reveals nothing. When no SMS may be sent (unknown card, not ours, not
-- active, or an SMS request from another mobile), the request is "silent": its OTP state
-- goes to the card's decoy hash instead of the card, with an OTP that matches no code,
-- so that a later check counts, voids and expires it like a real one (otp_check.lua).
-- Both kinds run the same commands, only on different keys: the work reveals nothing
-- either. The request record (q:{rid}, another slot) is written by the caller after this.
--
-- KEYS: 1 card hash, 2 card request times (zset), 3 card history,
--       4 the card's decoy hash, 5 the decoy's history
-- ARGV: 1 now (epoch s), 2 request id, 3 OTP digest, 4 amount ('' = bound to the card
--       alone), 5 merchant, 6 ttl, 7 resend gap, 8 max per card per hour,
--       9 the card may get an SMS (ours and active: 1/0), 10 moment (ISO), 11 history
--       length, 12 requesting mobile
--       ('' = the payment system)

local DECOY_TTL = 3600  -- as long as a request record lives
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600)
local wait = 0
local gap = tonumber(ARGV[7])
if gap > 0 then
  local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #last > 0 then wait = math.max(wait, tonumber(last[2]) + gap - now) end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[8]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + 3600 - now)
end
if wait > 0 then return cjson.encode({status = 'rate_limited', wait = math.ceil(wait)}) end

redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[2], 3600)

local expires = now + tonumber(ARGV[6])
local card = redis.call('HMGET', KEYS[1], 'state', 'mobile', 'last4')
local deliverable = ARGV[9] == '1' and card[1] == 'active'
  and (ARGV[12] == '' or ARGV[12] == card[2])
local target, history, otp = KEYS[1], KEYS[3], ARGV[3]
if not deliverable then target, history, otp = KEYS[4], KEYS[5], '-' end
-- NIST SP 800-63B: a new OTP does not reset the failed attempts of the one it replaces
-- (a success does; they lapse an hour after that OTP expired)
local before = redis.call('HMGET', target, 'attempts', 'otp_state', 'expires')
local failed = 0
if before[2] ~= 'used' and (tonumber(before[3]) or 0) + 3600 > now then
  failed = tonumber(before[1]) or 0
end

redis.call('HSET', target, 'rid', ARGV[2], 'otp', otp, 'amount', ARGV[4],
           'merchant', ARGV[5], 'expires', expires, 'attempts', failed, 'otp_state', 'live')
redis.call('EXPIRE', KEYS[4], DECOY_TTL)
local entry = {kind = deliverable and 'otp_issued' or 'otp_silent', at = ARGV[10],
               request = ARGV[2], by = (ARGV[12] == '' and 'payment' or 'sms')}
if ARGV[4] ~= '' then
  entry.amount = tonumber(ARGV[4])
  entry.merchant = ARGV[5]
end
redis.call('LPUSH', history, cjson.encode(entry))
redis.call('LTRIM', history, 0, tonumber(ARGV[11]) - 1)
redis.call('EXPIRE', KEYS[5], DECOY_TTL)
if not deliverable then return cjson.encode({status = 'silent'}) end
return cjson.encode({status = 'issued', mobile = card[2], last4 = card[3]})
