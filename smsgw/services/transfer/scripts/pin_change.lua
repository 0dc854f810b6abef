-- Change a transfer PIN, atomically: PIN:old:new:new. Checks: sender, blocked, a PIN
-- exists, old PIN right. A wrong old PIN is a strike (the last one blocks: pin_strike in
-- _prelude.lua); the change itself is free. Envelope (idempotency, redelivery): see
-- _prelude.lua. Keys and arguments: PinChangeKeys, PinChangeArgs (../store.py).

local seen = already_answered()
if seen then return seen end

local sender = redis.call('HMGET', K.sender, 'plan', 'pin', 'strikes', 'blocked', 'lang')
-- the language a reply is told in, decided here (a successor with another default
-- language renders what was decided): the sender's, else the gateway's default
if A.open ~= '1' then  -- outside [transfer] open_from..open_until
  return finish({status = 'closed', lang = sender[5] or A.default_lang})
end
if not sender[1] then return finish({status = 'unknown_sender', lang = A.default_lang}) end
local lang = sender[5] or A.default_lang
if sender[1] ~= 'prepaid' then return finish({status = 'postpaid_sender', lang = lang}) end
if sender[4] == '1' then return finish({status = 'blocked', lang = lang}) end
if not sender[2] then return finish({status = 'no_pin', lang = lang}) end

local strikes = rials(sender[3], 0)
if not strikes then return finish({status = 'account_error', lang = lang}) end
local refused = pin_strike(K.sender, K.history, sender[2], A.old_pin, strikes,
                           tonumber(A.max_attempts), A.at, lang)
if refused then return finish(refused) end

later('HSET', K.sender, 'pin', A.new_pin, 'strikes', '0')
record(K.history, {kind = 'pin_changed'}, A.at)
return finish({status = 'pin_changed', lang = lang})
