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
-- KEYS: 1 card hash, 2 card history, 3 the card's decoy hash, 4 the decoy's history
-- ARGV: 1 now (epoch s), 2 request id ('' = whichever is current), 3 OTP digest,
--       4 amount ('' = no payment given), 5 merchant, 6 max attempts, 7 moment (ISO),
--       8 history length, 9 ttl (of a decoy OTP begun now)

local DECOY_TTL = 3600
local FIELDS = {'rid', 'otp', 'amount', 'merchant', 'expires', 'attempts', 'otp_state'}
local now = tonumber(ARGV[1])

local function read(key)
  local values = redis.call('HMGET', key, unpack(FIELDS))
  if not values[1] then return nil end
  local otp = {}
  for i, name in ipairs(FIELDS) do otp[name] = values[i] end
  otp.expires = tonumber(otp.expires) or 0
  otp.attempts = tonumber(otp.attempts) or 0
  return otp
end

local real = read(KEYS[1])
local decoy = read(KEYS[3])
local active = redis.call('HGET', KEYS[1], 'state') == 'active'

local otp, key, history, is_real = real, KEYS[1], KEYS[2], true
if decoy and (not real or decoy.expires > real.expires) then
  otp, key, history, is_real = decoy, KEYS[3], KEYS[4], false
end
if otp == nil and ARGV[2] == '' then  -- by card, and it has no OTP: as if long expired
  return cjson.encode({status = 'expired'})
end
local fresh = otp == nil
if fresh then
  otp = {rid = ARGV[2], otp = '-', amount = '', merchant = '', expires = now + tonumber(ARGV[9]),
         attempts = 0, otp_state = 'live'}
  key, history, is_real = KEYS[3], KEYS[4], false
end

if ARGV[2] ~= '' and otp.rid ~= ARGV[2] then return cjson.encode({status = 'expired'}) end
if otp.otp_state == 'used' then return cjson.encode({status = 'used'}) end
if otp.otp_state == 'void' then return cjson.encode({status = 'too_many_attempts'}) end
if now > otp.expires then return cjson.encode({status = 'expired'}) end

local function record(kind)
  local entry = {kind = kind, at = ARGV[7], request = otp.rid}
  redis.call('LPUSH', history, cjson.encode(entry))
  redis.call('LTRIM', history, 0, tonumber(ARGV[8]) - 1)
  redis.call('EXPIRE', KEYS[4], DECOY_TTL)
end

local bound_elsewhere = ARGV[4] ~= '' and otp.amount ~= ''
  and (otp.amount ~= ARGV[4] or otp.merchant ~= ARGV[5])
if not (is_real and active) or otp.otp ~= ARGV[3] or bound_elsewhere then
  local attempts = otp.attempts + 1
  local void = attempts >= tonumber(ARGV[6])
  local changes = {'attempts', attempts}
  if void then table.insert(changes, 'otp_state'); table.insert(changes, 'void') end
  if fresh then
    for _, name in ipairs({'rid', 'otp', 'amount', 'merchant', 'expires'}) do
      table.insert(changes, name); table.insert(changes, otp[name])
    end
  end
  redis.call('HSET', key, unpack(changes))
  redis.call('EXPIRE', KEYS[3], DECOY_TTL)
  if void then
    record('otp_voided')
    return cjson.encode({status = 'too_many_attempts', request = otp.rid})
  end
  return cjson.encode({status = 'wrong_code'})
end

redis.call('HSET', key, 'otp_state', 'used')
redis.call('EXPIRE', KEYS[3], DECOY_TTL)
record('otp_used')
return cjson.encode({status = 'ok', request = otp.rid})
