-- Approve a card payment with the static second password, atomically: only while the
-- card's static total for the Tehran day stays within the limit (above it the dynamic
-- password is required). 3 wrong passwords in a row close the static path for the rest
-- of the day (the OTP path still works). Unknown, foreign, disabled and blocked cards get
-- the same answers as a card whose password is wrong.
-- KEYS: 1 card hash, 2 static day total, 3 card history
-- ARGV: 1 amount, 2 password digest, 3 daily limit, 4 day, 5 moment (ISO),
--       6 history length, 7 max wrong in a row, 8 card is ours (1/0)

local amount = tonumber(ARGV[1])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if total + amount > tonumber(ARGV[3]) then return cjson.encode({status = 'otp_required'}) end

local c = redis.call('HMGET', KEYS[1], 'state', 'static', 'static_wrong', 'static_wrong_day',
                     'static_locked_day')
if ARGV[8] ~= '1' or c[1] ~= 'active' or c[5] == ARGV[4] then
  return cjson.encode({status = 'declined'})
end

local function record(entry)
  entry.at = ARGV[5]
  redis.call('LPUSH', KEYS[3], cjson.encode(entry))
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
end

if c[2] ~= ARGV[2] then
  local wrong = 1
  if c[4] == ARGV[4] then wrong = tonumber(c[3] or '0') + 1 end
  redis.call('HSET', KEYS[1], 'static_wrong', wrong, 'static_wrong_day', ARGV[4])
  if wrong >= tonumber(ARGV[7]) then
    redis.call('HSET', KEYS[1], 'static_locked_day', ARGV[4])
    record({kind = 'static_locked'})
  end
  return cjson.encode({status = 'declined'})
end

redis.call('HSET', KEYS[1], 'static_wrong', 0)
redis.call('INCRBY', KEYS[2], amount)
redis.call('EXPIRE', KEYS[2], 3 * 24 * 3600)
record({kind = 'paid_static', amount = amount})
return cjson.encode({status = 'approved'})
