-- The last step of a journaled transfer: drop it from the sender's journal, once credited
-- ("done"), or give everything back when the recipient could not be credited ("reverse":
-- amount and fee to the balance, the fee out of the fees collected, the amount out of the
-- day and month counters). Idempotent: a transfer no longer in the journal is left alone.
-- A reversal leaves a marker (KEYS[6]) holding why (ARGV[6], the refusal the sender is
-- told), so that a later redelivery of the message learns that its transfer was
-- reversed, not done.
--
-- Checked before the first write. A reversal gives back the sender's own money even if
-- a top-up meanwhile took the balance near the ceiling: it may pass it (up to four times
-- the ceiling, still exact; transfers from it are then refused until care looks at it).
-- A journal entry or a sender that can't be read is left in the journal (`stuck`): its
-- money stays counted as in flight, nothing is lost, and care can see it.
-- KEYS: 1 sender hash, 2 journal, 3 sender history, 4 day counter, 5 month counter,
--       6 reversal marker
-- ARGV: 1 transfer id, 2 mode (done | reverse), 3 moment (ISO), 4 history length,
--       5 marker ttl (s), 6 reason (reverse)

local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return cjson.encode({status = 'gone'}) end
if ARGV[2] ~= 'reverse' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return cjson.encode({status = 'settled'})
end

local ok, entry = pcall(cjson.decode, raw)
if not (ok and type(entry) == 'table') then entry = {} end
local amount, fee = rials(entry.amount), rials(entry.fee)
local sender = redis.call('HMGET', KEYS[1], 'balance', 'fees_paid')
local balance = rials(sender[1], 0, 4 * MONEY_CEILING)
local fees_paid = rials(sender[2], 0)
if not (amount and fee and amount >= 0 and fee >= 0 and balance and fees_paid)
    or balance + amount + fee > 4 * MONEY_CEILING then
  return cjson.encode({status = 'stuck'})
end
redis.call('LLEN', KEYS[3])  -- WRONGTYPE now, not after the first write

balance = balance + amount + fee
later('HDEL', KEYS[2], ARGV[1])
later('HSET', KEYS[1], 'balance', whole(balance), 'fees_paid', whole(fees_paid - fee))
for _, key in ipairs({KEYS[4], KEYS[5]}) do
  -- a counter gone (expired) or unreadable is left alone
  if rials(redis.call('GET', key)) then later('DECRBY', key, whole(amount)) end
end
later('LPUSH', KEYS[3], to_json({kind = 'transfer_reversed', ref = entry.ref,
                                 to = entry.recipient, amount = amount, fee = fee,
                                 balance = balance, at = ARGV[3]}))
later('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
later('SET', KEYS[6], ARGV[6], 'EX', ARGV[5])
apply_pending()
return to_json({status = 'reversed', balance = balance})
