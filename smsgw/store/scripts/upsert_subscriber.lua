-- Load one subscriber row. A new subscriber gets every field; a known one gets its plan
-- and language updated, and its balance and bill only when replace = 1. The caller
-- (subscribers.py) has checked the row; this checks again, before any write, that the
-- plan is known and balance (0..ceiling) and bill (+-ceiling) are whole rials.
-- Keys and arguments: UpsertKeys, UpsertArgs (../shared.py).
-- Returns 'added', 'updated' or 'replaced'.

local plan = A.plan
local balance, bill = rials(A.balance), rials(A.bill)
if not (balance and bill and balance >= 0 and (plan == 'prepaid' or plan == 'postpaid')) then
  return redis.error_reply('upsert_subscriber: plan prepaid|postpaid, balance 0..' ..
                           whole(MONEY_CEILING) .. ', bill within +-' .. whole(MONEY_CEILING))
end
local known = redis.call('EXISTS', K.subscriber) == 1
if known then redis.call('HLEN', K.subscriber) end  -- WRONGTYPE now, not after a write
local outcome
if not known then
  later('HSET', K.subscriber, 'plan', plan, 'balance', whole(balance), 'bill', whole(bill),
        'lang', A.language, 'strikes', '0', 'blocked', '0', 'fees_paid', '0')
  outcome = 'added'
elseif A.replace == '1' then
  later('HSET', K.subscriber, 'plan', plan, 'balance', whole(balance), 'bill', whole(bill),
        'lang', A.language)
  outcome = 'replaced'
else
  later('HSET', K.subscriber, 'plan', plan, 'lang', A.language)
  outcome = 'updated'
end
local entry = {kind = 'loaded', by = 'care', outcome = outcome, plan = plan}
if outcome ~= 'updated' then
  entry.balance = balance
  entry.bill = bill
end
record(K.history, entry, A.at)
apply_pending()
return outcome
