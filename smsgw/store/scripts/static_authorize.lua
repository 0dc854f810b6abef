-- Approve a card payment with the static second password, atomically: only while the
-- card's static total for the Tehran day stays within the limit (above it the dynamic
-- password is required). The password is checked first: whoever lacks it learns nothing
-- of the card (not even that it exists, or what it paid today), and every wrong password
-- counts. 3 wrong in a row close the static path for the rest of the day (the OTP path
-- still works). Unknown, foreign, disabled and blocked cards get the same answers as a
-- card whose password is wrong, by the same commands: their strikes count on the card's
-- decoy hash.
-- KEYS: 1 card hash, 2 static day total, 3 card history, 4 the card's decoy hash,
--       5 the decoy's history
-- ARGV: 1 amount, 2 password digest, 3 daily limit, 4 day, 5 moment (ISO),
--       6 history length, 7 max wrong in a row, 8 card is ours (1/0)

local DECOY_TTL = 3600
local STRIKE_FIELDS = {'static_wrong', 'static_wrong_day', 'static_locked_day'}
local amount = tonumber(ARGV[1])
local day = ARGV[4]
local c = redis.call('HMGET', KEYS[1], 'state', 'static', unpack(STRIKE_FIELDS))
local d = redis.call('HMGET', KEYS[4], unpack(STRIKE_FIELDS))
local total = tonumber(redis.call('GET', KEYS[2]) or '0')

local function record(history, entry)
  entry.at = ARGV[5]
  redis.call('LPUSH', history, cjson.encode(entry))
  redis.call('LTRIM', history, 0, tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[5], DECOY_TTL)
end

local usable = ARGV[8] == '1' and c[1] == 'active'
if not (usable and c[5] ~= day and c[2] == ARGV[2]) then
  local key, history, wrong, wrong_day = KEYS[1], KEYS[3], c[3], c[4]
  if not usable then key, history, wrong, wrong_day = KEYS[4], KEYS[5], d[1], d[2] end
  wrong = (wrong_day == day and tonumber(wrong or '0') or 0) + 1
  local changes = {'static_wrong', wrong, 'static_wrong_day', day}
  if wrong >= tonumber(ARGV[7]) then
    table.insert(changes, 'static_locked_day'); table.insert(changes, day)
  end
  redis.call('HSET', key, unpack(changes))
  redis.call('EXPIRE', KEYS[4], DECOY_TTL)
  if wrong == tonumber(ARGV[7]) then record(history, {kind = 'static_locked'}) end
  return cjson.encode({status = 'declined'})
end

redis.call('HSET', KEYS[1], 'static_wrong', 0)
if total + amount > tonumber(ARGV[3]) then return cjson.encode({status = 'otp_required'}) end
redis.call('INCRBY', KEYS[2], amount)
redis.call('EXPIRE', KEYS[2], 3 * 24 * 3600)
record(KEYS[3], {kind = 'paid_static', amount = amount})
return cjson.encode({status = 'approved'})
