-- Load one subscriber row. A new subscriber gets every field; a known one gets its plan
-- and language updated, and its balance and bill only when replace = 1.
-- KEYS: 1 subscriber hash, 2 history
-- ARGV: 1 plan, 2 balance, 3 bill, 4 language, 5 replace (1/0), 6 moment, 7 history length
-- Returns 'added', 'updated' or 'replaced'.

local known = redis.call('EXISTS', KEYS[1]) == 1
local outcome
if not known then
  redis.call('HSET', KEYS[1], 'plan', ARGV[1], 'balance', ARGV[2], 'bill', ARGV[3],
             'lang', ARGV[4], 'strikes', '0', 'blocked', '0', 'fees_paid', '0')
  outcome = 'added'
elseif ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'plan', ARGV[1], 'balance', ARGV[2], 'bill', ARGV[3], 'lang', ARGV[4])
  outcome = 'replaced'
else
  redis.call('HSET', KEYS[1], 'plan', ARGV[1], 'lang', ARGV[4])
  outcome = 'updated'
end
local entry = {kind = 'loaded', at = ARGV[6], by = 'care', outcome = outcome, plan = ARGV[1]}
if outcome ~= 'updated' then
  entry.balance = tonumber(ARGV[2])
  entry.bill = tonumber(ARGV[3])
end
redis.call('LPUSH', KEYS[2], cjson.encode(entry))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
return outcome
