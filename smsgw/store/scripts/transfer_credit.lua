-- The second step of a journaled transfer (see transfer.lua, debit mode): credit the
-- recipient once per transfer id. The ids credited lately are kept (a zset scored by the
-- server's clock) for `keep` seconds; the caller calls this only while the sender's
-- journal still holds the transfer, right before, so a repeat within that time is a no-op.
-- KEYS: 1 recipient hash, 2 recipient history, 3 credited ids (zset)
-- ARGV: 1 transfer id, 2 amount, 3 sender, 4 ref, 5 moment (ISO), 6 history length,
--       7 keep (s)

local time = redis.call('TIME')
local now = tonumber(time[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[7]))
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return cjson.encode({status = 'already'}) end
local plan = redis.call('HGET', KEYS[1], 'plan')
if not plan then return cjson.encode({status = 'no_recipient'}) end

local amount = tonumber(ARGV[2])
if plan == 'prepaid' then
  redis.call('HINCRBY', KEYS[1], 'balance', amount)
else
  redis.call('HINCRBY', KEYS[1], 'bill', -amount)
end
redis.call('LPUSH', KEYS[2], cjson.encode({kind = 'transfer_in', ref = ARGV[4], from = ARGV[3],
                                           amount = amount, plan = plan, at = ARGV[5]}))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[7])
return cjson.encode({status = 'credited', plan = plan})
