-- The last step of a journaled transfer: drop it from the sender's journal, once credited
-- ("done"), or give everything back when the recipient could not be credited ("reverse":
-- amount and fee to the balance, the fee out of the fees collected, the amount out of the
-- day and month counters). Idempotent: a transfer no longer in the journal is left alone.
-- A reversal leaves a marker (K.reversed) holding why (A.reason, the refusal the sender
-- is told), so that a later redelivery of the message learns that its transfer was
-- reversed, not done.
--
-- Checked before the first write. A reversal gives back the sender's own money even if
-- a top-up meanwhile took the balance near the ceiling: it may pass it (up to four times
-- the ceiling, still exact; transfers from it are then refused until care looks at it).
-- A journal entry or a sender that can't be read is left in the journal (`stuck`): its
-- money stays counted as in flight, nothing is lost, and care can see it.
-- Keys and arguments: SettleKeys, SettleArgs (../store.py).

local raw = redis.call('HGET', K.journal, A.txid)
if not raw then return cjson.encode({status = 'gone'}) end
if A.mode ~= 'reverse' then
  redis.call('HDEL', K.journal, A.txid)
  return cjson.encode({status = 'settled'})
end

local ok, entry = pcall(cjson.decode, raw)
if not (ok and type(entry) == 'table') then entry = {} end
local amount, fee = rials(entry.amount), rials(entry.fee)
local sender = redis.call('HMGET', K.sender, 'balance', 'fees_paid')
local balance = rials(sender[1], 0, 4 * MONEY_CEILING)
local fees_paid = rials(sender[2], 0)
if not (amount and fee and amount >= 0 and fee >= 0 and balance and fees_paid)
    or balance + amount + fee > 4 * MONEY_CEILING then
  return cjson.encode({status = 'stuck'})
end

balance = balance + amount + fee
later('HDEL', K.journal, A.txid)
later('HSET', K.sender, 'balance', whole(balance), 'fees_paid', whole(fees_paid - fee))
for _, key in ipairs({K.day, K.month}) do
  -- a counter gone (expired) or unreadable is left alone
  if rials(redis.call('GET', key)) then later('DECRBY', key, whole(amount)) end
end
record(K.history, {kind = 'transfer_reversed', ref = entry.ref, to = entry.recipient,
                   amount = amount, fee = fee, balance = balance}, A.at)
later('SET', K.reversed, A.reason, 'EX', A.marker_ttl)
apply_pending()
return to_json({status = 'reversed', balance = balance})
