-- Check a card's one-time password, atomically: for /v1/otp/verify (by request id) or
-- /v1/payments/authorize (by card, amount and merchant). Single use: the first success
-- uses it up. A wrong code counts; `max attempts` wrong codes void it. An OTP bound to a
-- payment only passes for that amount and merchant (a mismatch counts as a wrong code).
--
-- KEYS: 1 card hash, 2 card history
-- ARGV: 1 now (epoch s), 2 request id ('' = whichever is current), 3 OTP digest,
--       4 amount ('' = no payment given), 5 merchant, 6 max attempts, 7 moment (ISO),
--       8 history length

local c = redis.call('HMGET', KEYS[1], 'rid', 'otp', 'amount', 'merchant', 'expires',
                     'attempts', 'otp_state', 'state')
if not c[1] then return cjson.encode({status = 'wrong_code'}) end
if ARGV[2] ~= '' and c[1] ~= ARGV[2] then return cjson.encode({status = 'expired'}) end
if c[7] == 'used' then return cjson.encode({status = 'used'}) end
if c[7] == 'void' then return cjson.encode({status = 'too_many_attempts'}) end
if tonumber(ARGV[1]) > tonumber(c[5]) then return cjson.encode({status = 'expired'}) end

local function record(kind)
  local entry = {kind = kind, at = ARGV[7], request = c[1]}
  redis.call('LPUSH', KEYS[2], cjson.encode(entry))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[8]) - 1)
end

local bound_elsewhere = ARGV[4] ~= '' and c[3] ~= '' and (c[3] ~= ARGV[4] or c[4] ~= ARGV[5])
if c[2] ~= ARGV[3] or bound_elsewhere or c[8] ~= 'active' then
  local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  if attempts >= tonumber(ARGV[6]) then
    redis.call('HSET', KEYS[1], 'otp_state', 'void')
    record('otp_voided')
    return cjson.encode({status = 'too_many_attempts'})
  end
  return cjson.encode({status = 'wrong_code'})
end

redis.call('HSET', KEYS[1], 'otp_state', 'used')
record('otp_used')
return cjson.encode({status = 'ok'})
