-- Approve a card payment with the static second password, atomically: only while the
-- card's static total for the Tehran day stays within the limit (above it the dynamic
-- password is required). The password is checked first: whoever lacks it learns nothing
-- of the card (not even that it exists, or what it paid today), and every wrong password
-- counts. 3 wrong in a row close the static path for the rest of the day (the OTP path
-- still works). Unknown, foreign, disabled and blocked cards get the same answers as a
-- card whose password is wrong, by the same commands: their strikes count on the card's
-- decoy hash.
-- Keys and arguments: StaticKeys, StaticArgs (../store.py).

local DECOY_TTL = 3600
local STRIKE_FIELDS = {'static_wrong', 'static_wrong_day', 'static_locked_day'}
local amount = tonumber(A.amount)
local day = A.day
local max_wrong = tonumber(A.max_wrong)
local c = redis.call('HMGET', K.card, 'state', 'static', unpack(STRIKE_FIELDS))
local d = redis.call('HMGET', K.decoy, unpack(STRIKE_FIELDS))
local total = tonumber(redis.call('GET', K.day_total) or '0')

local function note(history, entry)  -- written now (the other writes here are direct)
  record(history, entry, A.at)
  later('EXPIRE', K.decoy_history, DECOY_TTL)
  apply_pending()
end

local usable = A.ours == '1' and c[1] == 'active'
if not (usable and c[5] ~= day and c[2] == A.password) then
  local key, history, wrong, wrong_day = K.card, K.history, c[3], c[4]
  if not usable then key, history, wrong, wrong_day = K.decoy, K.decoy_history, d[1], d[2] end
  wrong = (wrong_day == day and tonumber(wrong or '0') or 0) + 1
  local changes = {'static_wrong', wrong, 'static_wrong_day', day}
  if wrong >= max_wrong then
    table.insert(changes, 'static_locked_day'); table.insert(changes, day)
  end
  redis.call('HSET', key, unpack(changes))
  redis.call('EXPIRE', K.decoy, DECOY_TTL)
  if wrong == max_wrong then note(history, {kind = 'static_locked'}) end
  return cjson.encode({status = 'declined'})
end

redis.call('HSET', K.card, 'static_wrong', 0)
if total + amount > tonumber(A.daily_limit) then
  return cjson.encode({status = 'otp_required'})
end
redis.call('INCRBY', K.day_total, amount)
redis.call('EXPIRE', K.day_total, 3 * 24 * 3600)
note(K.history, {kind = 'paid_static', amount = amount})
return cjson.encode({status = 'approved'})
