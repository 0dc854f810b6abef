-- Customer-care actions on one subscriber, atomically, each recorded in the history.
-- KEYS: 1 subscriber hash, 2 history
-- ARGV: 1 action (unblock | reset_pin | topup), 2 moment (ISO), 3 history length,
--       4 amount (topup), 5 operator note
-- Returns JSON: {status = 'ok' | 'unknown', ...}

local action = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({status = 'unknown'}) end

local entry = {kind = action, at = ARGV[2], by = 'care', note = ARGV[5]}
local result = {status = 'ok'}
if action == 'unblock' then
  redis.call('HSET', KEYS[1], 'blocked', '0', 'strikes', '0')
elseif action == 'reset_pin' then
  redis.call('HDEL', KEYS[1], 'pin')
  redis.call('HSET', KEYS[1], 'strikes', '0')
elseif action == 'topup' then
  local amount = tonumber(ARGV[4])
  entry.amount = amount
  if redis.call('HGET', KEYS[1], 'plan') == 'prepaid' then
    result.balance = redis.call('HINCRBY', KEYS[1], 'balance', amount)
  else
    result.bill = redis.call('HINCRBY', KEYS[1], 'bill', -amount)
  end
else
  return redis.error_reply('unknown care action ' .. action)
end
redis.call('LPUSH', KEYS[2], cjson.encode(entry))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return cjson.encode(result)
