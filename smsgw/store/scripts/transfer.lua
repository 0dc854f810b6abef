-- Decide and apply one credit transfer, atomically. The order of checks is the spec's:
-- (1 format: done before this script) 2 sender, 3 PIN, 4 recipient, amount, caps, credit.
-- A refusal changes nothing, except a wrong PIN (a strike; the last one blocks) and a
-- correct PIN (strikes back to 0). Envelope (idempotency, redelivery): see _prelude.lua.
--
-- Two modes. "whole" (one server): the recipient is credited here too. "debit" (a
-- cluster, where the recipient's keys are in another slot): the sender side only, with
-- the recipient's plan and language read just before, and the transfer written to the
-- sender's journal; transfer_credit.lua and transfer_settle.lua finish it.
--
-- K: 1 sender hash, 2 recipient hash (debit: the sender's journal), 3 sender day counter,
--    4 sender month counter, 5 sender history, 6 recipient history (debit: unused)
-- A: 1 pin digest, 2 amount, 3 fee, 4 min, 5 max, 6 daily cap, 7 monthly cap,
--    8 day-counter ttl, 9 month-counter ttl, 10 moment (ISO), 11 transfer ref,
--    12 recipient in operator range (1/0), 13 max PIN attempts, 14 history length,
--    15 sender, 16 recipient, 17 mode (whole | debit), and in debit mode:
--    18 recipient plan ('' = unknown), 19 recipient language, 20 transfer id

local seen = already_answered()
if seen then return seen end

local function record(history_key, entry)
  entry.at = A(10)
  redis.call('LPUSH', history_key, cjson.encode(entry))
  redis.call('LTRIM', history_key, 0, tonumber(A(14)) - 1)
end

-- 2. sender
local sender = redis.call('HMGET', K(1), 'plan', 'balance', 'pin', 'strikes', 'blocked', 'lang')
if not sender[1] then return finish({status = 'unknown_sender'}) end
local lang = sender[6] or ''
if sender[1] ~= 'prepaid' then return finish({status = 'postpaid_sender', lang = lang}) end
if sender[5] == '1' then return finish({status = 'blocked', lang = lang}) end

-- 3. PIN (before one exists, the given PIN is accepted and stored on success)
local max_attempts = tonumber(A(13))
if sender[3] and sender[3] ~= A(1) then
  local strikes = redis.call('HINCRBY', K(1), 'strikes', 1)
  if strikes >= max_attempts then
    redis.call('HSET', K(1), 'blocked', '1')
    record(K(5), {kind = 'blocked', by = 'wrong_pin', strikes = strikes})
    return finish({status = 'blocked_now', lang = lang, max_attempts = max_attempts})
  end
  record(K(5), {kind = 'wrong_pin', strikes = strikes})
  return finish({status = 'wrong_pin', lang = lang, attempts_left = max_attempts - strikes})
end
if sender[4] and sender[4] ~= '0' then redis.call('HSET', K(1), 'strikes', '0') end

-- 4. recipient, amount, caps, credit
local debit_only = A(17) == 'debit'
local recipient
if debit_only then
  recipient = {A(18) ~= '' and A(18), A(19)}
else
  recipient = redis.call('HMGET', K(2), 'plan', 'lang')
end
if A(12) ~= '1' or not recipient[1] then
  return finish({status = 'unknown_recipient', lang = lang})
end
if A(15) == A(16) then return finish({status = 'self_transfer', lang = lang}) end

local amount = tonumber(A(2))
if amount < tonumber(A(4)) then return finish({status = 'below_min', lang = lang}) end
if amount > tonumber(A(5)) then return finish({status = 'above_max', lang = lang}) end

local sent_today = tonumber(redis.call('GET', K(3)) or '0')
local daily_cap = tonumber(A(6))
if sent_today + amount > daily_cap then
  return finish({status = 'daily_cap', lang = lang, remaining = daily_cap - sent_today})
end
local sent_month = tonumber(redis.call('GET', K(4)) or '0')
local monthly_cap = tonumber(A(7))
if sent_month + amount > monthly_cap then
  return finish({status = 'monthly_cap', lang = lang, remaining = monthly_cap - sent_month})
end

local fee = tonumber(A(3))
local balance = tonumber(sender[2] or '0')
if balance < amount + fee then
  return finish({status = 'insufficient', lang = lang, balance = balance})
end

-- apply
local new_balance = redis.call('HINCRBY', K(1), 'balance', -(amount + fee))
redis.call('HINCRBY', K(1), 'fees_paid', fee)
if not sender[3] then redis.call('HSET', K(1), 'pin', A(1)) end
redis.call('INCRBY', K(3), amount)
redis.call('EXPIRE', K(3), A(8))
redis.call('INCRBY', K(4), amount)
redis.call('EXPIRE', K(4), A(9))

local recipient_plan = recipient[1]
if debit_only then
  redis.call('HSET', K(2), A(20), cjson.encode({
    recipient = A(16), amount = amount, fee = fee, ref = A(11), at = A(10),
    day_key = K(3), month_key = K(4)}))
elseif recipient_plan == 'prepaid' then
  redis.call('HINCRBY', K(2), 'balance', amount)
else
  redis.call('HINCRBY', K(2), 'bill', -amount)
end

record(K(5), {kind = 'transfer_out', ref = A(11), to = A(16), amount = amount,
              fee = fee, balance = new_balance, pin_set = (not sender[3])})
if not debit_only then
  record(K(6), {kind = 'transfer_in', ref = A(11), from = A(15), amount = amount,
                plan = recipient_plan})
end
local outcome = {status = 'ok', lang = lang, recipient_lang = recipient[2] or '',
                 recipient_plan = recipient_plan, ref = A(11), at = A(10),
                 amount = amount, fee = fee, balance = new_balance,
                 pin_set = (not sender[3]), txid = debit_only and A(20) or nil}
local stored = finish(outcome)
if not debit_only then return stored end
-- debited just now (not an earlier outcome answered again): the caller knows the journal
-- entry without reading it back
outcome.debited_now = true
return cjson.encode(outcome)
