-- Customer-care actions on one subscriber, atomically, each recorded in the history.
-- Everything is checked before the first write.
-- Keys and arguments: CareKeys, CareArgs (../shared.py); the action is unblock |
-- reset_pin | topup (by A.amount).
-- Returns JSON: {status = 'ok' | 'unknown' | 'beyond_ceiling' | 'unreadable', ...}.
-- A top-up raises a prepaid balance, or lowers a postpaid bill, by 1..MONEY_CEILING
-- rials; one that would take it beyond the ceiling is refused (`beyond_ceiling`, with
-- the value now), and so is one on a balance or bill that is not a number of rials
-- (`unreadable`).

local action = A.action
if redis.call('EXISTS', K.subscriber) == 0 then return cjson.encode({status = 'unknown'}) end
redis.call('LLEN', K.history)  -- WRONGTYPE now, not after the first write

local entry = {kind = action, by = 'care', note = A.note}
local result = {status = 'ok'}
if action == 'unblock' then
  later('HSET', K.subscriber, 'blocked', '0', 'strikes', '0')
elseif action == 'reset_pin' then
  later('HDEL', K.subscriber, 'pin')
  later('HSET', K.subscriber, 'strikes', '0')
elseif action == 'topup' then
  local amount = rials(A.amount)
  if not amount or amount < 1 then
    return redis.error_reply('care: a top-up is 1 to ' .. whole(MONEY_CEILING) .. ' rials')
  end
  entry.amount = amount
  local field, sign = 'bill', -1
  if redis.call('HGET', K.subscriber, 'plan') == 'prepaid' then field, sign = 'balance', 1 end
  local now = rials(redis.call('HGET', K.subscriber, field), 0)
  if not now then return to_json({status = 'unreadable', field = field}) end
  local after = now + sign * amount
  if after > MONEY_CEILING or after < -MONEY_CEILING then
    return to_json({status = 'beyond_ceiling', field = field, [field] = now})
  end
  later('HSET', K.subscriber, field, whole(after))
  result[field] = after
else
  return redis.error_reply('unknown care action ' .. action)
end
record(K.history, entry, A.at)
apply_pending()
return to_json(result)
