-- Customer-care actions on one subscriber, atomically, each recorded in the history.
-- Everything is checked before the first write.
-- KEYS: 1 subscriber hash, 2 history
-- ARGV: 1 action (unblock | reset_pin | topup), 2 moment (ISO), 3 history length,
--       4 amount (topup), 5 operator note
-- Returns JSON: {status = 'ok' | 'unknown' | 'beyond_ceiling' | 'unreadable', ...}.
-- A top-up raises a prepaid balance, or lowers a postpaid bill, by 1..MONEY_CEILING
-- rials; one that would take it beyond the ceiling is refused (`beyond_ceiling`, with
-- the value now), and so is one on a balance or bill that is not a number of rials
-- (`unreadable`).

local action = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({status = 'unknown'}) end
redis.call('LLEN', KEYS[2])  -- WRONGTYPE now, not after the first write

local entry = {kind = action, at = ARGV[2], by = 'care', note = ARGV[5]}
local result = {status = 'ok'}
if action == 'unblock' then
  later('HSET', KEYS[1], 'blocked', '0', 'strikes', '0')
elseif action == 'reset_pin' then
  later('HDEL', KEYS[1], 'pin')
  later('HSET', KEYS[1], 'strikes', '0')
elseif action == 'topup' then
  local amount = rials(ARGV[4])
  if not amount or amount < 1 then
    return redis.error_reply('care: a top-up is 1 to ' .. whole(MONEY_CEILING) .. ' rials')
  end
  entry.amount = amount
  local field, sign = 'bill', -1
  if redis.call('HGET', KEYS[1], 'plan') == 'prepaid' then field, sign = 'balance', 1 end
  local now = rials(redis.call('HGET', KEYS[1], field), 0)
  if not now then return to_json({status = 'unreadable', field = field}) end
  local after = now + sign * amount
  if after > MONEY_CEILING or after < -MONEY_CEILING then
    return to_json({status = 'beyond_ceiling', field = field, [field] = now})
  end
  later('HSET', KEYS[1], field, whole(after))
  result[field] = after
else
  return redis.error_reply('unknown care action ' .. action)
end
later('LPUSH', KEYS[2], to_json(entry))
later('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
apply_pending()
return to_json(result)
