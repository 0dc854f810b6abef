-- Check a card's one-time password, atomically: for /v1/otp/verify (by request id) or
-- /v1/payments/authorize (by card, amount and merchant). Single use: the first success
-- uses it up. A wrong code counts; `max attempts` wrong codes void it. An OTP bound to a
-- payment only passes for that amount and merchant (a mismatch counts as a wrong code).
--
-- The OTP checked is the card's latest request: a real one (on the card) or a silent one
-- (on its decoy hash, see otp_request.lua), whichever is newer. A request id that names
-- neither is expired (a newer request replaced it). A request id that finds no request
-- at all (a made-up one, whose card is a decoy the caller derived from it) begins a decoy
-- OTP now, so that it too counts, voids and expires like a silent one. A check by card
-- that finds none is expired, as for a card whose last OTP is long gone. Every path runs
-- the same commands for a real card as for a decoy. A verdict ("ok", or the attempt that
-- voids) names its request, for its webhook event (services/otp/events.py).
--
-- Keys and arguments: OtpCheckKeys, OtpCheckArgs (../store.py).

local DECOY_TTL = 3600
local FIELDS = {'rid', 'otp', 'amount', 'merchant', 'expires', 'attempts', 'otp_state'}
local now = tonumber(A.now)

local function read(key)
  local values = redis.call('HMGET', key, unpack(FIELDS))
  if not values[1] then return nil end
  local otp = {}
  for i, name in ipairs(FIELDS) do otp[name] = values[i] end
  otp.expires = tonumber(otp.expires) or 0
  otp.attempts = tonumber(otp.attempts) or 0
  return otp
end

local real = read(K.card)
local decoy = read(K.decoy)
local active = redis.call('HGET', K.card, 'state') == 'active'

local otp, key, history, is_real = real, K.card, K.history, true
if decoy and (not real or decoy.expires > real.expires) then
  otp, key, history, is_real = decoy, K.decoy, K.decoy_history, false
end
if otp == nil and A.request_id == '' then  -- by card, and it has no OTP: as if long expired
  return cjson.encode({status = 'expired'})
end
local fresh = otp == nil
if fresh then
  otp = {rid = A.request_id, otp = '-', amount = '', merchant = '', expires = now + tonumber(A.ttl),
         attempts = 0, otp_state = 'live'}
  key, history, is_real = K.decoy, K.decoy_history, false
end

if A.request_id ~= '' and otp.rid ~= A.request_id then return cjson.encode({status = 'expired'}) end
if otp.otp_state == 'used' then return cjson.encode({status = 'used'}) end
if otp.otp_state == 'void' then return cjson.encode({status = 'too_many_attempts'}) end
if now > otp.expires then return cjson.encode({status = 'expired'}) end

local function note(kind)  -- written now (the other writes of this script are direct)
  record(history, {kind = kind, request = otp.rid}, A.at)
  later('EXPIRE', K.decoy_history, DECOY_TTL)
  apply_pending()
end

local bound_elsewhere = A.amount ~= '' and otp.amount ~= ''
  and (otp.amount ~= A.amount or otp.merchant ~= A.merchant)
if not (is_real and active) or otp.otp ~= A.otp or bound_elsewhere then
  local attempts = otp.attempts + 1
  local void = attempts >= tonumber(A.max_attempts)
  local changes = {'attempts', attempts}
  if void then table.insert(changes, 'otp_state'); table.insert(changes, 'void') end
  if fresh then
    for _, name in ipairs({'rid', 'otp', 'amount', 'merchant', 'expires'}) do
      table.insert(changes, name); table.insert(changes, otp[name])
    end
  end
  redis.call('HSET', key, unpack(changes))
  redis.call('EXPIRE', K.decoy, DECOY_TTL)
  if void then
    note('otp_voided')
    return cjson.encode({status = 'too_many_attempts', request = otp.rid})
  end
  return cjson.encode({status = 'wrong_code'})
end

redis.call('HSET', key, 'otp_state', 'used')
redis.call('EXPIRE', K.decoy, DECOY_TTL)
note('otp_used')
return cjson.encode({status = 'ok', request = otp.rid})
