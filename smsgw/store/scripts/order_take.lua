-- Cross-process arrival order per subscriber (several gateways, each on its own bind,
-- sharing one store). A message takes a ticket at the tail of its sender's queue, and
-- is applied once its ticket is at the head (order_head.lua); then it leaves
-- (order_leave.lua). A ticket holds a lease: a gateway that died holding the head is
-- skipped once its lease is over, so the others are never stuck.
-- KEYS: 1 the sender's queue (a list of "<ticket>|<lease end, ms>")
-- ARGV: 1 ticket, 2 lease (ms)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('RPUSH', KEYS[1], ARGV[1] .. '|' .. (now_ms + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
local head = redis.call('LINDEX', KEYS[1], 0)
return string.sub(head, 1, string.find(head, '|', 1, true) - 1)
