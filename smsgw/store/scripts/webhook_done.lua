-- After one delivery attempt of a request's first queued event: "retry" counts the
-- attempt and schedules the next; "done" (delivered, or given up) drops the event and
-- makes the request's next event due now, or forgets the request if none is left.
-- KEYS: 1 the request's queue, 2 due index, 3 the head event's attempts (hash)
-- ARGV: 1 request id, 2 event id, 3 "retry" | "done", 4 next attempt (epoch s),
--       5 when this attempt began (epoch s)
if ARGV[3] == 'retry' then
  redis.call('HINCRBY', KEYS[3], 'attempts', 1)
  redis.call('HSETNX', KEYS[3], 'first', ARGV[5])
  redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), ARGV[1])
  return 1
end
local head = redis.call('LINDEX', KEYS[1], 0)
if head and cjson.decode(head).id == ARGV[2] then redis.call('LPOP', KEYS[1]) end
redis.call('DEL', KEYS[3])
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), ARGV[1])
end
return 1
