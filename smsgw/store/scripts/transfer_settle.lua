-- The last step of a journaled transfer: drop it from the sender's journal, once credited
-- ("done"), or give everything back when the recipient could not be credited ("reverse":
-- amount and fee to the balance, the fee out of the fees collected, the amount out of the
-- day and month counters). Idempotent: a transfer no longer in the journal is left alone.
-- A reversal leaves a marker (KEYS[6]) so that a later redelivery of the message learns
-- that its transfer was reversed, not done.
-- KEYS: 1 sender hash, 2 journal, 3 sender history, 4 day counter, 5 month counter,
--       6 reversal marker
-- ARGV: 1 transfer id, 2 mode (done | reverse), 3 moment (ISO), 4 history length,
--       5 marker ttl (s)

local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return cjson.encode({status = 'gone'}) end
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] ~= 'reverse' then return cjson.encode({status = 'settled'}) end

local entry = cjson.decode(raw)
local amount, fee = tonumber(entry.amount), tonumber(entry.fee)
local balance = redis.call('HINCRBY', KEYS[1], 'balance', amount + fee)
redis.call('HINCRBY', KEYS[1], 'fees_paid', -fee)
for _, key in ipairs({KEYS[4], KEYS[5]}) do
  if redis.call('EXISTS', key) == 1 then redis.call('DECRBY', key, amount) end
end
redis.call('LPUSH', KEYS[3], cjson.encode({kind = 'transfer_reversed', ref = entry.ref,
                                           to = entry.recipient, amount = amount, fee = fee,
                                           balance = balance, at = ARGV[3]}))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
redis.call('SET', KEYS[6], '1', 'EX', ARGV[5])
return cjson.encode({status = 'reversed', balance = balance})
