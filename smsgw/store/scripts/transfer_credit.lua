-- The second step of a journaled transfer (see transfer.lua, debit mode): credit the
-- recipient once per transfer id. The ids credited lately are kept (a zset scored by the
-- server's clock) for `keep` seconds; the caller calls this only while the sender's
-- journal still holds the transfer, right before, so a repeat within that time is a no-op.
-- Everything is checked before the first write: a recipient that is gone (`no_recipient`)
-- or whose balance or bill would pass the ceiling (`no_room`) is left as it was, and the
-- caller reverses the transfer.
-- KEYS: 1 recipient hash, 2 recipient history, 3 credited ids (zset)
-- ARGV: 1 transfer id, 2 amount, 3 sender, 4 ref, 5 moment (ISO), 6 history length,
--       7 keep (s)

local amount = rials(ARGV[2])
if not amount or amount < 0 then return redis.error_reply('transfer_credit: bad amount') end
local time = redis.call('TIME')
local now = tonumber(time[1])
local keep = tonumber(ARGV[7])
local credited_at = redis.call('ZSCORE', KEYS[3], ARGV[1])
if credited_at and tonumber(credited_at) > now - keep then
  return cjson.encode({status = 'already'})
end
local recipient = redis.call('HMGET', KEYS[1], 'plan', 'balance', 'bill')
local plan = recipient[1]
if not plan then return cjson.encode({status = 'no_recipient'}) end

local field, value = 'bill', rials(recipient[3], 0)
if plan == 'prepaid' then field, value = 'balance', rials(recipient[2], 0) end
if value then value = field == 'balance' and value + amount or value - amount end
if not value or value > MONEY_CEILING or value < -MONEY_CEILING then
  return cjson.encode({status = 'no_room'})
end
redis.call('LLEN', KEYS[2])  -- WRONGTYPE now, not after the first write

later('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - keep)
later('HSET', KEYS[1], field, whole(value))
later('LPUSH', KEYS[2], to_json({kind = 'transfer_in', ref = ARGV[4], from = ARGV[3],
                                 amount = amount, plan = plan, at = ARGV[5]}))
later('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
later('ZADD', KEYS[3], now, ARGV[1])
later('EXPIRE', KEYS[3], ARGV[7])
apply_pending()
return cjson.encode({status = 'credited', plan = plan})
