-- Decide and apply one credit transfer, atomically. The order of checks is the spec's:
-- (1 format: done before this script) 2 sender, 3 PIN, 4 recipient, amount, caps, credit,
-- then (our rule) room: the recipient's balance or bill stays within MONEY_CEILING.
-- A refusal changes nothing, except a wrong PIN (a strike; the last one blocks) and a
-- correct PIN (strikes back to 0). Envelope (idempotency, redelivery): see _prelude.lua.
-- Every value is read and checked first; the writes are queued (`later`) and done by
-- `finish`, so that no check can fail after a write (see "Money" in _prelude.lua).
--
-- Two modes. "whole" (one server): the recipient is credited here too. "debit" (a
-- cluster, where the recipient's keys are in another slot): the sender side only, with
-- the recipient's plan, language, balance and bill read just before, and the transfer
-- written to the sender's journal; transfer_credit.lua and transfer_settle.lua finish it
-- (and check the recipient's room again: it may have changed since).
--
-- K: 1 sender hash, 2 recipient hash (debit: the sender's journal), 3 sender day counter,
--    4 sender month counter, 5 sender history, 6 recipient history (debit: unused)
-- A: 1 pin digest, 2 amount, 3 fee, 4 min, 5 max, 6 daily cap, 7 monthly cap,
--    8 day-counter ttl, 9 month-counter ttl, 10 moment (ISO), 11 transfer ref,
--    12 recipient in operator range (1/0), 13 max PIN attempts, 14 history length,
--    15 sender, 16 recipient, 17 mode (whole | debit), and in debit mode:
--    18 recipient plan ('' = unknown), 19 recipient language, 20 transfer id,
--    21 recipient balance, 22 recipient bill ('' = none)

local fee, min_amount, max_amount = rials(A(3)), rials(A(4)), rials(A(5))
local daily_cap, monthly_cap = rials(A(6)), rials(A(7))
if not (fee and min_amount and max_amount and daily_cap and monthly_cap and fee >= 0) then
  return redis.error_reply('transfer: fee, min, max and caps must be whole rials within the ceiling')
end

local seen = already_answered()
if seen then return seen end

local function record(history_key, entry)
  entry.at = A(10)
  later('LPUSH', history_key, to_json(entry))
  later('LTRIM', history_key, 0, tonumber(A(14)) - 1)
end

-- 2. sender
local sender = redis.call('HMGET', K(1), 'plan', 'balance', 'pin', 'strikes', 'blocked', 'lang',
                          'fees_paid')
if not sender[1] then return finish({status = 'unknown_sender'}) end
local lang = sender[6] or ''
if sender[1] ~= 'prepaid' then return finish({status = 'postpaid_sender', lang = lang}) end
if sender[5] == '1' then return finish({status = 'blocked', lang = lang}) end

-- 3. PIN (before one exists, the given PIN is accepted and stored on success)
local max_attempts = tonumber(A(13))
redis.call('LLEN', K(5))  -- the history, written below: WRONGTYPE now, not after a write
local strikes = rials(sender[4], 0)
if not strikes then return finish({status = 'account_error', lang = lang}) end
if sender[3] and sender[3] ~= A(1) then
  strikes = strikes + 1
  later('HSET', K(1), 'strikes', whole(strikes))
  if strikes >= max_attempts then
    later('HSET', K(1), 'blocked', '1')
    record(K(5), {kind = 'blocked', by = 'wrong_pin', strikes = strikes})
    return finish({status = 'blocked_now', lang = lang, max_attempts = max_attempts})
  end
  record(K(5), {kind = 'wrong_pin', strikes = strikes})
  return finish({status = 'wrong_pin', lang = lang, attempts_left = max_attempts - strikes})
end
if strikes ~= 0 then later('HSET', K(1), 'strikes', '0') end

-- 4. recipient, amount, caps, credit
local debit_only = A(17) == 'debit'
local recipient
if debit_only then
  recipient = {A(18) ~= '' and A(18) or nil, A(19), A(21) ~= '' and A(21) or nil,
               A(22) ~= '' and A(22) or nil}
else
  recipient = redis.call('HMGET', K(2), 'plan', 'lang', 'balance', 'bill')
end
if A(12) ~= '1' or not recipient[1] then
  return finish({status = 'unknown_recipient', lang = lang})
end
if A(15) == A(16) then return finish({status = 'self_transfer', lang = lang}) end

-- an amount beyond the ceiling (the caller sends any such as MONEY_CEILING + 1) is
-- above any maximum
local amount = rials(A(2))
if amount and (amount < min_amount or amount < 0) then
  return finish({status = 'below_min', lang = lang})
end
if not amount or amount > max_amount then return finish({status = 'above_max', lang = lang}) end

local sent_today, sent_month = rials(redis.call('GET', K(3)), 0), rials(redis.call('GET', K(4)), 0)
local balance, fees_paid = rials(sender[2], 0), rials(sender[7], 0)
if not (sent_today and sent_month and balance and fees_paid) then
  return finish({status = 'account_error', lang = lang})
end
if sent_today + amount > daily_cap then
  return finish({status = 'daily_cap', lang = lang, remaining = daily_cap - sent_today})
end
if sent_month + amount > monthly_cap then
  return finish({status = 'monthly_cap', lang = lang, remaining = monthly_cap - sent_month})
end
if balance < amount + fee then
  return finish({status = 'insufficient', lang = lang, balance = balance})
end
if fees_paid + fee > MONEY_CEILING then return finish({status = 'account_error', lang = lang}) end

-- room: a prepaid balance goes up by the amount, a postpaid bill down; either must stay
-- a number within the ceiling
local recipient_plan = recipient[1]
local credited_field, credited_to = 'bill', rials(recipient[4], 0)
if recipient_plan == 'prepaid' then credited_field, credited_to = 'balance', rials(recipient[3], 0) end
if credited_to then
  credited_to = credited_field == 'balance' and credited_to + amount or credited_to - amount
end
if not credited_to or credited_to > MONEY_CEILING or credited_to < -MONEY_CEILING then
  return finish({status = 'recipient_limit', lang = lang})
end

-- apply (a key about to be written that holds another type raises WRONGTYPE now, not
-- half-way through the writes)
if debit_only then redis.call('HLEN', K(2)) else redis.call('LLEN', K(6)) end
local new_balance = balance - amount - fee
later('HSET', K(1), 'balance', whole(new_balance), 'fees_paid', whole(fees_paid + fee))
if not sender[3] then later('HSET', K(1), 'pin', A(1)) end
later('SET', K(3), whole(sent_today + amount), 'EX', A(8))
later('SET', K(4), whole(sent_month + amount), 'EX', A(9))

if debit_only then
  later('HSET', K(2), A(20), to_json({
    recipient = A(16), amount = amount, fee = fee, ref = A(11), at = A(10),
    day_key = K(3), month_key = K(4)}))
else
  later('HSET', K(2), credited_field, whole(credited_to))
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
return to_json(outcome)
