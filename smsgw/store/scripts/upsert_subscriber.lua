-- Load one subscriber row. A new subscriber gets every field; a known one gets its plan
-- and language updated, and its balance and bill only when replace = 1. The caller
-- (subscribers.py) has checked the row; this checks again, before any write, that the
-- plan is known and balance (0..ceiling) and bill (+-ceiling) are whole rials.
-- KEYS: 1 subscriber hash, 2 history
-- ARGV: 1 plan, 2 balance, 3 bill, 4 language, 5 replace (1/0), 6 moment, 7 history length
-- Returns 'added', 'updated' or 'replaced'.

local balance, bill = rials(ARGV[2]), rials(ARGV[3])
if not (balance and bill and balance >= 0 and (ARGV[1] == 'prepaid' or ARGV[1] == 'postpaid')) then
  return redis.error_reply('upsert_subscriber: plan prepaid|postpaid, balance 0..' ..
                           whole(MONEY_CEILING) .. ', bill within +-' .. whole(MONEY_CEILING))
end
local known = redis.call('EXISTS', KEYS[1]) == 1
if known then redis.call('HLEN', KEYS[1]) end  -- WRONGTYPE now, not after the first write
redis.call('LLEN', KEYS[2])
local outcome
if not known then
  later('HSET', KEYS[1], 'plan', ARGV[1], 'balance', whole(balance), 'bill', whole(bill),
        'lang', ARGV[4], 'strikes', '0', 'blocked', '0', 'fees_paid', '0')
  outcome = 'added'
elseif ARGV[5] == '1' then
  later('HSET', KEYS[1], 'plan', ARGV[1], 'balance', whole(balance), 'bill', whole(bill),
        'lang', ARGV[4])
  outcome = 'replaced'
else
  later('HSET', KEYS[1], 'plan', ARGV[1], 'lang', ARGV[4])
  outcome = 'updated'
end
local entry = {kind = 'loaded', at = ARGV[6], by = 'care', outcome = outcome, plan = ARGV[1]}
if outcome ~= 'updated' then
  entry.balance = balance
  entry.bill = bill
end
later('LPUSH', KEYS[2], to_json(entry))
later('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
apply_pending()
return outcome
