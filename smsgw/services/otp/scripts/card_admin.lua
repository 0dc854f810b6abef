-- Branch and care actions on a card, atomically, each recorded in the card's history.
-- Changing the mobile, disabling or blocking voids any live OTP. One slot: the mobile ->
-- cards index lives in the mobile's slot and is kept by the caller (card_action in
-- ../store.py). Keys and arguments: CardAdminKeys, CardAdminArgs (../store.py); the
-- action is add | set_mobile | disable | block.

local action = A.action
local exists = redis.call('EXISTS', K.card) == 1
local entry = {kind = 'card_' .. action, by = 'branch'}
local old_mobile = ''

if action == 'add' then
  if exists then
    return cjson.encode({status = 'exists', mobile = redis.call('HGET', K.card, 'mobile')})
  end
  redis.call('HSET', K.card, 'last4', A.last4, 'type', A.card_type, 'mobile', A.mobile,
             'static', A.static_digest, 'state', 'active', 'static_wrong', 0)
  entry.mobile = A.mobile
  entry.type = A.card_type
elseif not exists then
  return cjson.encode({status = 'unknown'})
elseif action == 'set_mobile' then
  old_mobile = redis.call('HGET', K.card, 'mobile')
  redis.call('HSET', K.card, 'mobile', A.mobile, 'otp_state', 'void')
  entry.old_mobile = old_mobile
  entry.mobile = A.mobile
elseif action == 'disable' then
  redis.call('HSET', K.card, 'state', 'disabled', 'otp_state', 'void')
elseif action == 'block' then
  redis.call('HSET', K.card, 'state', 'blocked', 'otp_state', 'void')
else
  return redis.error_reply('unknown card action ' .. action)
end
record(K.history, entry, A.at)
apply_pending()
return cjson.encode({status = 'ok', old_mobile = old_mobile})
