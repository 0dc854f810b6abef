-- The ticket at the head of a sender's queue (see order_take.lua), after dropping heads
-- whose lease is over (their gateway died or hung). '' when the queue is empty.
-- K.queue: the sender's queue
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
while true do
  local head = redis.call('LINDEX', K.queue, 0)
  if not head then return '' end
  local bar = string.find(head, '|', 1, true)
  if tonumber(string.sub(head, bar + 1)) >= now_ms then return string.sub(head, 1, bar - 1) end
  redis.call('LPOP', K.queue)
end
