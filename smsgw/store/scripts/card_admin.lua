-- Branch and care actions on a card, atomically, each recorded in the card's history.
-- Changing the mobile, disabling or blocking voids any live OTP.
-- KEYS: 1 card hash, 2 card history, 3 new mobile's cards (hash), 4 old mobile's cards
-- ARGV: 1 action (add | set_mobile | disable | block), 2 moment (ISO), 3 history length,
--       4 card hash, 5 last four, 6 type, 7 mobile, 8 static password digest

local action = ARGV[1]
local exists = redis.call('EXISTS', KEYS[1]) == 1
local entry = {kind = 'card_' .. action, at = ARGV[2], by = 'branch'}

if action == 'add' then
  if exists then return cjson.encode({status = 'exists'}) end
  redis.call('HSET', KEYS[1], 'last4', ARGV[5], 'type', ARGV[6], 'mobile', ARGV[7],
             'static', ARGV[8], 'state', 'active', 'static_wrong', 0)
  redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
  entry.mobile = ARGV[7]
  entry.type = ARGV[6]
elseif not exists then
  return cjson.encode({status = 'unknown'})
elseif action == 'set_mobile' then
  local old = redis.call('HGET', KEYS[1], 'mobile')
  redis.call('HDEL', KEYS[4], ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[4], redis.call('HGET', KEYS[1], 'last4'))
  redis.call('HSET', KEYS[1], 'mobile', ARGV[7], 'otp_state', 'void')
  entry.old_mobile = old
  entry.mobile = ARGV[7]
elseif action == 'disable' then
  redis.call('HSET', KEYS[1], 'state', 'disabled', 'otp_state', 'void')
elseif action == 'block' then
  redis.call('HSET', KEYS[1], 'state', 'blocked', 'otp_state', 'void')
else
  return redis.error_reply('unknown card action ' .. action)
end
redis.call('LPUSH', KEYS[2], cjson.encode(entry))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return cjson.encode({status = 'ok'})
