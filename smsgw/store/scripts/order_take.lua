-- Cross-process arrival order per subscriber (several gateways, each on its own bind,
-- sharing one store). A message takes a ticket at the tail of its sender's queue, and
-- is applied once its ticket is at the head (order_head.lua); then it leaves
-- (order_leave.lua). A ticket holds a lease: a gateway that died holding the head is
-- skipped once its lease is over, so the others are never stuck.
-- K.queue: a list of "<ticket>|<lease end, ms>"; A.ticket, A.lease_ms (../shared.py)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('RPUSH', K.queue, A.ticket .. '|' .. (now_ms + tonumber(A.lease_ms)))
redis.call('PEXPIRE', K.queue, tonumber(A.lease_ms) * 2)
local head = redis.call('LINDEX', K.queue, 0)
return string.sub(head, 1, string.find(head, '|', 1, true) - 1)
