-- The answer for a request id that sent no SMS (see otp_request.lua): the same states, in
-- the same order, as a real OTP that is never guessed: wrong, then void; expired in time;
-- expired when a newer request for the same card exists.
-- KEYS: 1 request record
-- ARGV: 1 now (epoch s), 2 max attempts, 3 still the card's latest silent request (1/0)
local r = redis.call('HMGET', KEYS[1], 'expires', 'attempts', 'state')
if not r[1] then return cjson.encode({status = 'wrong_code'}) end
if ARGV[3] ~= '1' then return cjson.encode({status = 'expired'}) end
if r[3] == 'void' then return cjson.encode({status = 'too_many_attempts'}) end
if tonumber(ARGV[1]) > tonumber(r[1]) then return cjson.encode({status = 'expired'}) end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'void')
  return cjson.encode({status = 'too_many_attempts'})
end
return cjson.encode({status = 'wrong_code'})
