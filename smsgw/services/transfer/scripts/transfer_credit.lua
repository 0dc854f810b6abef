-- The second step of a journaled transfer (see transfer.lua, debit mode): credit the
-- recipient once per transfer id. The ids credited lately are kept (a zset scored by the
-- server's clock) for `keep` seconds; the caller calls this only while the sender's
-- journal still holds the transfer, right before, so a repeat within that time is a no-op.
-- Everything is checked before the first write: a recipient that is gone (`no_recipient`)
-- or whose balance or bill would pass the ceiling (`no_room`) is left as it was, and the
-- caller reverses the transfer.
-- Keys and arguments: CreditKeys, CreditArgs (../store.py).

local CLOCK_MARGIN_SECONDS = 60
local amount = rials(A.amount)
if not amount or amount < 0 then return redis.error_reply('transfer_credit: bad amount') end
local time = redis.call('TIME')
local now = tonumber(time[1])
local keep = tonumber(A.keep)
local credited_at = redis.call('ZSCORE', K.credited, A.txid)
if credited_at and tonumber(credited_at) > now - keep then
  return cjson.encode({status = 'already'})
end
-- A credit made more than `keep` ago is forgotten: one attempted that late could repeat
-- it. So a transfer debited that long ago is not credited here (`stale`): it stays in the
-- journal, its money counted as in flight, for care staff (`smsgw admin recover` lists
-- it). The margin covers the clocks of two cluster nodes.
local debited_at = tonumber(A.debited_at)
if debited_at and now - debited_at > keep - CLOCK_MARGIN_SECONDS then
  return cjson.encode({status = 'stale'})
end
local recipient = redis.call('HMGET', K.recipient, 'plan', 'balance', 'bill')
local plan = recipient[1]
if not plan then return cjson.encode({status = 'no_recipient'}) end

local field, value = 'bill', rials(recipient[3], 0)
if plan == 'prepaid' then field, value = 'balance', rials(recipient[2], 0) end
if value then value = field == 'balance' and value + amount or value - amount end
if not value or value > MONEY_CEILING or value < -MONEY_CEILING then
  return cjson.encode({status = 'no_room'})
end

later('ZREMRANGEBYSCORE', K.credited, '-inf', now - keep)
later('HSET', K.recipient, field, whole(value))
record(K.history, {kind = 'transfer_in', ref = A.ref, from = A.sender, amount = amount,
                   plan = plan}, A.at)
later('ZADD', K.credited, now, A.txid)
later('EXPIRE', K.credited, A.keep)
apply_pending()
return cjson.encode({status = 'credited', plan = plan})
