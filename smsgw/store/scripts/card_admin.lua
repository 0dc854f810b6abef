-- Branch and care actions on a card, atomically, each recorded in the card's history.
-- Changing the mobile, disabling or blocking voids any live OTP. One slot: the mobile ->
-- cards index lives in the mobile's slot and is kept by the caller (Store.card_action).
-- KEYS: 1 card hash, 2 card history
-- ARGV: 1 action (add | set_mobile | disable | block), 2 moment (ISO), 3 history length,
--       4 last four, 5 type, 6 mobile, 7 static password digest

local action = ARGV[1]
local exists = redis.call('EXISTS', KEYS[1]) == 1
local entry = {kind = 'card_' .. action, at = ARGV[2], by = 'branch'}
local old_mobile = ''

if action == 'add' then
  if exists then
    return cjson.encode({status = 'exists', mobile = redis.call('HGET', KEYS[1], 'mobile')})
  end
  redis.call('HSET', KEYS[1], 'last4', ARGV[4], 'type', ARGV[5], 'mobile', ARGV[6],
             'static', ARGV[7], 'state', 'active', 'static_wrong', 0)
  entry.mobile = ARGV[6]
  entry.type = ARGV[5]
elseif not exists then
  return cjson.encode({status = 'unknown'})
elseif action == 'set_mobile' then
  old_mobile = redis.call('HGET', KEYS[1], 'mobile')
  redis.call('HSET', KEYS[1], 'mobile', ARGV[6], 'otp_state', 'void')
  entry.old_mobile = old_mobile
  entry.mobile = ARGV[6]
elseif action == 'disable' then
  redis.call('HSET', KEYS[1], 'state', 'disabled', 'otp_state', 'void')
elseif action == 'block' then
  redis.call('HSET', KEYS[1], 'state', 'blocked', 'otp_state', 'void')
else
  return redis.error_reply('unknown card action ' .. action)
end
redis.call('LPUSH', KEYS[2], cjson.encode(entry))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return cjson.encode({status = 'ok', old_mobile = old_mobile})
