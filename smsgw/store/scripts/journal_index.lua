-- Index a journaled transfer (before its debit), or drop it from the index (once
-- finished), in the shard of the index that the sender's number picks. As scripts
-- rather than plain ZADD/ZREM so that, on a cluster, they travel with the other calls
-- of their batch, straight to the node (store/node_pipes.py).
if A.at_ms ~= '' then
  return redis.call('ZADD', K.shard, A.at_ms, A.member)
end
return redis.call('ZREM', K.shard, A.member)
