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
-- Keys and arguments: OtpRequestKeys, OtpRequestArgs (../store.py).

local DECOY_TTL = 3600  -- as long as a request record lives
local now = tonumber(A.now)
redis.call('ZREMRANGEBYSCORE', K.requests, '-inf', now - 3600)
local wait = 0
local gap = tonumber(A.resend_gap)
if gap > 0 then
  local last = redis.call('ZREVRANGE', K.requests, 0, 0, 'WITHSCORES')
  if #last > 0 then wait = math.max(wait, tonumber(last[2]) + gap - now) end
end
if redis.call('ZCARD', K.requests) >= tonumber(A.max_per_hour) then
  local first = redis.call('ZRANGE', K.requests, 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + 3600 - now)
end
if wait > 0 then return cjson.encode({status = 'rate_limited', wait = math.ceil(wait)}) end

redis.call('ZADD', K.requests, now, A.request_id)
redis.call('EXPIRE', K.requests, 3600)

local expires = now + tonumber(A.ttl)
local card = redis.call('HMGET', K.card, 'state', 'mobile', 'last4')
local deliverable = A.deliverable == '1' and card[1] == 'active'
  and (A.requested_by == '' or A.requested_by == card[2])
local target, history, otp = K.card, K.history, A.otp
if not deliverable then target, history, otp = K.decoy, K.decoy_history, '-' end
-- NIST SP 800-63B: a new OTP does not reset the failed attempts of the one it replaces
-- (a success does; they lapse an hour after that OTP expired)
local before = redis.call('HMGET', target, 'attempts', 'otp_state', 'expires')
local failed = 0
if before[2] ~= 'used' and (tonumber(before[3]) or 0) + 3600 > now then
  failed = tonumber(before[1]) or 0
end

redis.call('HSET', target, 'rid', A.request_id, 'otp', otp, 'amount', A.amount,
           'merchant', A.merchant, 'expires', expires, 'attempts', failed, 'otp_state', 'live')
redis.call('EXPIRE', K.decoy, DECOY_TTL)
local entry = {kind = deliverable and 'otp_issued' or 'otp_silent', request = A.request_id,
               by = (A.requested_by == '' and 'payment' or 'sms')}
if A.amount ~= '' then
  entry.amount = tonumber(A.amount)
  entry.merchant = A.merchant
end
record(history, entry, A.at)
later('EXPIRE', K.decoy_history, DECOY_TTL)
apply_pending()
if not deliverable then return cjson.encode({status = 'silent'}) end
return cjson.encode({status = 'issued', mobile = card[2], last4 = card[3]})
