-- Change a transfer PIN, atomically: PIN:old:new:new. Checks: sender, blocked, a PIN
-- exists, old PIN right. A wrong old PIN is a strike (the last one blocks); the change
-- itself is free. Outcome JSON is kept under the message identity like transfer.lua.
--
-- KEYS: 1 sender hash, 2 sender history, 3 processed-message key
-- ARGV: 1 old digest, 2 new digest, 3 max PIN attempts, 4 moment (ISO),
--       5 processed ttl, 6 history length, 7 remember message (1/0)

local remember = ARGV[7] == '1'
if remember then
  local seen = redis.call('GET', KEYS[3])
  if seen then return seen end
end

local function finish(outcome)
  local encoded = cjson.encode(outcome)
  if remember then redis.call('SET', KEYS[3], encoded, 'EX', ARGV[5]) end
  return encoded
end

local function record(entry)
  entry.at = ARGV[4]
  redis.call('LPUSH', KEYS[2], cjson.encode(entry))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
end

local sender = redis.call('HMGET', KEYS[1], 'plan', 'pin', 'strikes', 'blocked', 'lang')
if not sender[1] then return finish({status = 'unknown_sender'}) end
local lang = sender[5] or ''
if sender[1] ~= 'prepaid' then return finish({status = 'postpaid_sender', lang = lang}) end
if sender[4] == '1' then return finish({status = 'blocked', lang = lang}) end
if not sender[2] then return finish({status = 'no_pin', lang = lang}) end

local max_attempts = tonumber(ARGV[3])
if sender[2] ~= ARGV[1] then
  local strikes = redis.call('HINCRBY', KEYS[1], 'strikes', 1)
  if strikes >= max_attempts then
    redis.call('HSET', KEYS[1], 'blocked', '1')
    record({kind = 'blocked', by = 'wrong_pin', strikes = strikes})
    return finish({status = 'blocked_now', lang = lang, max_attempts = max_attempts})
  end
  record({kind = 'wrong_pin', strikes = strikes})
  return finish({status = 'wrong_pin', lang = lang, attempts_left = max_attempts - strikes})
end

redis.call('HSET', KEYS[1], 'pin', ARGV[2], 'strikes', '0')
record({kind = 'pin_changed'})
return finish({status = 'pin_changed', lang = lang})
