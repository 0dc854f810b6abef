-- Change a transfer PIN, atomically: PIN:old:new:new. Checks: sender, blocked, a PIN
-- exists, old PIN right. A wrong old PIN is a strike (the last one blocks); the change
-- itself is free. Envelope (idempotency, redelivery): see _prelude.lua.
--
-- K: 1 sender hash, 2 sender history
-- A: 1 old digest, 2 new digest, 3 max PIN attempts, 4 moment (ISO), 5 history length

local seen = already_answered()
if seen then return seen end

local function record(entry)
  entry.at = A(4)
  redis.call('LPUSH', K(2), cjson.encode(entry))
  redis.call('LTRIM', K(2), 0, tonumber(A(5)) - 1)
end

local sender = redis.call('HMGET', K(1), 'plan', 'pin', 'strikes', 'blocked', 'lang')
if not sender[1] then return finish({status = 'unknown_sender'}) end
local lang = sender[5] or ''
if sender[1] ~= 'prepaid' then return finish({status = 'postpaid_sender', lang = lang}) end
if sender[4] == '1' then return finish({status = 'blocked', lang = lang}) end
if not sender[2] then return finish({status = 'no_pin', lang = lang}) end

local max_attempts = tonumber(A(3))
if sender[2] ~= A(1) then
  local strikes = redis.call('HINCRBY', K(1), 'strikes', 1)
  if strikes >= max_attempts then
    redis.call('HSET', K(1), 'blocked', '1')
    record({kind = 'blocked', by = 'wrong_pin', strikes = strikes})
    return finish({status = 'blocked_now', lang = lang, max_attempts = max_attempts})
  end
  record({kind = 'wrong_pin', strikes = strikes})
  return finish({status = 'wrong_pin', lang = lang, attempts_left = max_attempts - strikes})
end

redis.call('HSET', K(1), 'pin', A(2), 'strikes', '0')
record({kind = 'pin_changed'})
return finish({status = 'pin_changed', lang = lang})
