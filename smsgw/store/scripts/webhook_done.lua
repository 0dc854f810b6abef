-- After one delivery attempt of a request's first queued event: "retry" counts the
-- attempt and schedules the next; "done" (delivered, or given up) drops the event and
-- makes the request's next event due now, or forgets the request if none is left.
if A.outcome == 'retry' then
  redis.call('HINCRBY', K.tries, 'attempts', 1)
  redis.call('HSETNX', K.tries, 'first', A.began)
  redis.call('ZADD', K.due, tonumber(A.next_at), A.request_id)
  return 1
end
local head = redis.call('LINDEX', K.queue, 0)
if head and cjson.decode(head).id == A.event_id then redis.call('LPOP', K.queue) end
redis.call('DEL', K.tries)
if redis.call('LLEN', K.queue) == 0 then
  redis.call('ZREM', K.due, A.request_id)
else
  redis.call('ZADD', K.due, tonumber(A.began), A.request_id)
end
return 1
