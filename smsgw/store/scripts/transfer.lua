-- Decide and apply one credit transfer, atomically. The order of checks is the spec's:
-- (1 format: done before this script) 2 sender, 3 PIN, 4 recipient, amount, caps, credit.
-- A refusal changes nothing, except a wrong PIN (a strike; the last one blocks) and a
-- correct PIN (strikes back to 0). The outcome is returned as JSON and, when a message
-- identity is given, kept under it so that the same message is never applied twice.
--
-- KEYS: 1 sender hash, 2 recipient hash, 3 sender day counter, 4 sender month counter,
--       5 sender history, 6 recipient history, 7 processed-message key
-- ARGV: 1 pin digest, 2 amount, 3 fee, 4 min, 5 max, 6 daily cap, 7 monthly cap,
--       8 day-counter ttl, 9 month-counter ttl, 10 moment (ISO), 11 transfer ref,
--       12 recipient in operator range (1/0), 13 max PIN attempts, 14 processed ttl,
--       15 history length, 16 remember message (1/0), 17 sender, 18 recipient

local remember = ARGV[16] == '1'
if remember then
  local seen = redis.call('GET', KEYS[7])
  if seen then return seen end
end

local function finish(outcome)
  local encoded = cjson.encode(outcome)
  if remember then redis.call('SET', KEYS[7], encoded, 'EX', ARGV[14]) end
  return encoded
end

local function record(history_key, entry)
  entry.at = ARGV[10]
  redis.call('LPUSH', history_key, cjson.encode(entry))
  redis.call('LTRIM', history_key, 0, tonumber(ARGV[15]) - 1)
end

-- 2. sender
local sender = redis.call('HMGET', KEYS[1], 'plan', 'balance', 'pin', 'strikes', 'blocked', 'lang')
if not sender[1] then return finish({status = 'unknown_sender'}) end
local lang = sender[6] or ''
if sender[1] ~= 'prepaid' then return finish({status = 'postpaid_sender', lang = lang}) end
if sender[5] == '1' then return finish({status = 'blocked', lang = lang}) end

-- 3. PIN (before one exists, the given PIN is accepted and stored on success)
local max_attempts = tonumber(ARGV[13])
if sender[3] and sender[3] ~= ARGV[1] then
  local strikes = redis.call('HINCRBY', KEYS[1], 'strikes', 1)
  if strikes >= max_attempts then
    redis.call('HSET', KEYS[1], 'blocked', '1')
    record(KEYS[5], {kind = 'blocked', by = 'wrong_pin', strikes = strikes})
    return finish({status = 'blocked_now', lang = lang, max_attempts = max_attempts})
  end
  record(KEYS[5], {kind = 'wrong_pin', strikes = strikes})
  return finish({status = 'wrong_pin', lang = lang, attempts_left = max_attempts - strikes})
end
if sender[4] and sender[4] ~= '0' then redis.call('HSET', KEYS[1], 'strikes', '0') end

-- 4. recipient, amount, caps, credit
local recipient = redis.call('HMGET', KEYS[2], 'plan', 'lang')
if ARGV[12] ~= '1' or not recipient[1] then
  return finish({status = 'unknown_recipient', lang = lang})
end
if KEYS[1] == KEYS[2] then return finish({status = 'self_transfer', lang = lang}) end

local amount = tonumber(ARGV[2])
if amount < tonumber(ARGV[4]) then return finish({status = 'below_min', lang = lang}) end
if amount > tonumber(ARGV[5]) then return finish({status = 'above_max', lang = lang}) end

local sent_today = tonumber(redis.call('GET', KEYS[3]) or '0')
local daily_cap = tonumber(ARGV[6])
if sent_today + amount > daily_cap then
  return finish({status = 'daily_cap', lang = lang, remaining = daily_cap - sent_today})
end
local sent_month = tonumber(redis.call('GET', KEYS[4]) or '0')
local monthly_cap = tonumber(ARGV[7])
if sent_month + amount > monthly_cap then
  return finish({status = 'monthly_cap', lang = lang, remaining = monthly_cap - sent_month})
end

local fee = tonumber(ARGV[3])
local balance = tonumber(sender[2] or '0')
if balance < amount + fee then
  return finish({status = 'insufficient', lang = lang, balance = balance})
end

-- apply
local new_balance = redis.call('HINCRBY', KEYS[1], 'balance', -(amount + fee))
redis.call('HINCRBY', KEYS[1], 'fees_paid', fee)
if not sender[3] then redis.call('HSET', KEYS[1], 'pin', ARGV[1]) end
redis.call('INCRBY', KEYS[3], amount)
redis.call('EXPIRE', KEYS[3], ARGV[8])
redis.call('INCRBY', KEYS[4], amount)
redis.call('EXPIRE', KEYS[4], ARGV[9])

local recipient_plan = recipient[1]
if recipient_plan == 'prepaid' then
  redis.call('HINCRBY', KEYS[2], 'balance', amount)
else
  redis.call('HINCRBY', KEYS[2], 'bill', -amount)
end

record(KEYS[5], {kind = 'transfer_out', ref = ARGV[11], to = ARGV[18], amount = amount,
                 fee = fee, balance = new_balance, pin_set = (not sender[3])})
record(KEYS[6], {kind = 'transfer_in', ref = ARGV[11], from = ARGV[17], amount = amount,
                 plan = recipient_plan})
return finish({status = 'ok', lang = lang, recipient_lang = recipient[2] or '',
               recipient_plan = recipient_plan, ref = ARGV[11], at = ARGV[10],
               amount = amount, fee = fee, balance = new_balance,
               pin_set = (not sender[3])})
