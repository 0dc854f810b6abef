-- Take requests whose next webhook event is due, for one delivery worker: each taken is
-- leased (its next attempt moved past the lease), so no other worker takes it meanwhile,
-- and a worker that dies holding it only delays it by the lease.
local due = redis.call('ZRANGEBYSCORE', K.due, '-inf', A.now, 'LIMIT', 0, tonumber(A.limit))
for _, request in ipairs(due) do
  redis.call('ZADD', K.due, tonumber(A.now) + tonumber(A.lease_seconds), request)
end
return due
