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
-- Keys and arguments: their names are TransferKeys and TransferArgs (../store.py). In
-- debit mode K.recipient and K.recipient_history are placeholders (another slot), and
-- the recipient's fields come as arguments; in whole mode K.journal is one.

local fee, min_amount, max_amount = rials(A.fee), rials(A.min_amount), rials(A.max_amount)
local daily_cap, monthly_cap = rials(A.daily_cap), rials(A.monthly_cap)
if not (fee and min_amount and max_amount and daily_cap and monthly_cap and fee >= 0) then
  return redis.error_reply('transfer: fee, min, max and caps must be whole rials within the ceiling')
end

local seen = already_answered()
if seen then return seen end

-- 2. sender
local sender = redis.call('HMGET', K.sender, 'plan', 'balance', 'pin', 'strikes', 'blocked', 'lang',
                          'fees_paid')
-- the language a reply is told in, decided here (a successor with another default
-- language renders what was decided): the sender's, else the gateway's default
if A.open ~= '1' then  -- outside [transfer] open_from..open_until
  return finish({status = 'closed', lang = sender[6] or A.default_lang})
end
if not sender[1] then return finish({status = 'unknown_sender', lang = A.default_lang}) end
local lang = sender[6] or A.default_lang
if sender[1] ~= 'prepaid' then return finish({status = 'postpaid_sender', lang = lang}) end
if sender[5] == '1' then return finish({status = 'blocked', lang = lang}) end

-- 3. PIN (before one exists, the given PIN is accepted and stored on success)
redis.call('LLEN', K.sender_history)  -- written below: WRONGTYPE now, not after a write
local strikes = rials(sender[4], 0)
if not strikes then return finish({status = 'account_error', lang = lang}) end
local refused = pin_strike(K.sender, K.sender_history, sender[3], A.pin, strikes,
                           tonumber(A.max_attempts), A.at, lang)
if refused then return finish(refused) end

-- 4. recipient, amount, caps, credit
local debit_only = A.mode == 'debit'
local recipient
if debit_only then
  recipient = {A.recipient_plan ~= '' and A.recipient_plan or nil, A.recipient_lang,
               A.recipient_balance ~= '-' and A.recipient_balance or nil,
               A.recipient_bill ~= '-' and A.recipient_bill or nil}
else
  recipient = redis.call('HMGET', K.recipient, 'plan', 'lang', 'balance', 'bill')
end
-- a refusal carries every number and rule its reply shows: an outcome answered again
-- (an SMSC's reused id with another text), or rendered by a successor with other
-- settings, tells what was decided, not what the text or the new settings say
if A.in_range ~= '1' or not recipient[1] then
  return finish({status = 'unknown_recipient', lang = lang, recipient = A.recipient})
end
if A.sender == A.recipient then return finish({status = 'self_transfer', lang = lang}) end

-- an amount beyond the ceiling (the caller sends any such as MONEY_CEILING + 1) is
-- above any maximum
local amount = rials(A.amount)
if amount and (amount < min_amount or amount < 0) then
  return finish({status = 'below_min', lang = lang, min = min_amount})
end
if not amount or amount > max_amount then
  return finish({status = 'above_max', lang = lang, max = max_amount})
end

local sent_today, sent_month = rials(redis.call('GET', K.day), 0), rials(redis.call('GET', K.month), 0)
local balance, fees_paid = rials(sender[2], 0), rials(sender[7], 0)
if not (sent_today and sent_month and balance and fees_paid) then
  return finish({status = 'account_error', lang = lang})
end
if sent_today + amount > daily_cap then
  return finish({status = 'daily_cap', lang = lang, cap = daily_cap,
                 remaining = daily_cap - sent_today})
end
if sent_month + amount > monthly_cap then
  return finish({status = 'monthly_cap', lang = lang, cap = monthly_cap,
                 remaining = monthly_cap - sent_month})
end
if balance < amount + fee then
  return finish({status = 'insufficient', lang = lang, balance = balance, needed = amount + fee,
                 fee = fee})
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
  return finish({status = 'recipient_limit', lang = lang, recipient = A.recipient})
end

-- apply (a key about to be written that holds another type raises WRONGTYPE now, not
-- half-way through the writes)
if debit_only then redis.call('HLEN', K.journal) end
local new_balance = balance - amount - fee
later('HSET', K.sender, 'balance', whole(new_balance), 'fees_paid', whole(fees_paid + fee))
if not sender[3] then later('HSET', K.sender, 'pin', A.pin) end
later('SET', K.day, whole(sent_today + amount), 'EX', A.day_ttl)
later('SET', K.month, whole(sent_month + amount), 'EX', A.month_ttl)

local debited_at  -- the server's clock: how late a credit may still be checked for repeats
if debit_only then
  debited_at = tonumber(redis.call('TIME')[1])
  later('HSET', K.journal, A.txid, to_json({
    recipient = A.recipient, amount = amount, fee = fee, ref = A.ref, at = A.at,
    day_key = K.day, month_key = K.month, debited_at = debited_at}))
else
  later('HSET', K.recipient, credited_field, whole(credited_to))
end

record(K.sender_history, {kind = 'transfer_out', ref = A.ref, to = A.recipient,
                          amount = amount, fee = fee, balance = new_balance,
                          pin_set = (not sender[3])}, A.at)
if not debit_only then
  record(K.recipient_history, {kind = 'transfer_in', ref = A.ref, from = A.sender,
                               amount = amount, plan = recipient_plan}, A.at)
end
local outcome = {status = 'ok', lang = lang, recipient_lang = recipient[2] or '',
                 recipient_plan = recipient_plan, recipient = A.recipient, ref = A.ref, at = A.at,
                 tz = A.tz,
                 amount = amount, fee = fee, balance = new_balance,
                 pin_set = (not sender[3]), txid = debit_only and A.txid or nil}
local stored = finish(outcome)
if not debit_only then return stored end
-- debited just now (not an earlier outcome answered again): the caller knows the journal
-- entry without reading it back
outcome.debited_now = true
outcome.debited_at = debited_at
return to_json(outcome)
