-- Append one webhook event to its request's queue, in order, and make the request due
-- for delivery (workers/webhooks.py), atomically. Only a registered request that sent an
-- SMS gets events; a closing event (verified, voided, expired) only while the request
-- is open, and it closes it (and leaves the expiry index): one verdict per request.
-- KEYS: 1 registration, 2 the request's queue (list), 3 due index (zset: request id ->
--       next attempt), 4 expiry index
-- ARGV: 1 request id, 2 event id, 3 type, 4 moment (ISO), 5 detail (JSON object),
--       6 now (epoch s), 7 closes (1/0), 8 registration lifetime (s)
-- Returns 1 if an event was appended, else 0
local closes = ARGV[7] == '1'
if closes then redis.call('ZREM', KEYS[4], ARGV[1]) end
local request = redis.call('HMGET', KEYS[1], 'last4', 'state')
if not request[1] then return 0 end
if closes then
  if request[2] ~= 'open' then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'closed')
end
local event = cjson.encode({id = ARGV[2], type = ARGV[3], request_id = ARGV[1], at = ARGV[4],
                            card_last4 = request[1], detail = cjson.decode(ARGV[5])})
redis.call('RPUSH', KEYS[2], event)
redis.call('ZADD', KEYS[3], 'NX', tonumber(ARGV[6]), ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
return 1
