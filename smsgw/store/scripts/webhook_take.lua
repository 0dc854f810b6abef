-- Take requests whose next webhook event is due, for one delivery worker: each taken is
-- leased (its next attempt moved past the lease), so no other worker takes it meanwhile,
-- and a worker that dies holding it only delays it by the lease.
-- KEYS: 1 due index (zset: request id -> next attempt, epoch s)
-- ARGV: 1 now, 2 at most this many, 3 lease (s)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, request in ipairs(due) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), request)
end
return due
