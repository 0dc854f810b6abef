-- Take over the replies of gateways that stopped renewing their lease (one shard).
-- K: OutboxKeys; A: ClaimArgs (../outbox.py). A reply is taken when its owner is in
-- A.dead (its lease ran out), or is in neither list (unknown: a lease never written, or
-- long pruned) and the reply is older than A.unknown_before (ms). Owners in A.alive
-- (the claimer among them) keep theirs: no reply is sent by two live gateways at once.
-- With A.again = 1 the claimer's own are answered too: an earlier claim of this shard
-- may have run with its answer lost (the claimer keeps what it has in hand already).
-- -> {reply id, JSON, created ms, ..., now ms}, at most A.limit replies, then the store's
-- clock (the one `created` was stamped with: what is left of a reply's validity is
-- reckoned on it, never on a gateway's own clock, which may be skewed)
local alive, dead = {}, {}
for id in string.gmatch(A.alive, '%S+') do alive[id] = true end
for id in string.gmatch(A.dead, '%S+') do dead[id] = true end
local unknown_before = tonumber(A.unknown_before)
local limit = tonumber(A.limit)
if A.again == '1' then alive[A.claimer] = nil; dead[A.claimer] = true end
local owners = redis.call('HGETALL', K.owners)
local taken = {}
for i = 1, #owners, 2 do
  if #taken >= 3 * limit then break end
  local reply, owner = owners[i], owners[i + 1]
  if not alive[owner] then
    local created = redis.call('ZSCORE', K.times, reply)
    if dead[owner] or (created and tonumber(created) < unknown_before) then
      local entry = redis.call('HGET', K.entries, reply)
      if entry then
        redis.call('HSET', K.owners, reply, A.claimer)
        taken[#taken + 1] = reply
        taken[#taken + 1] = entry
        taken[#taken + 1] = created or '0'
      else  -- an owner left without its reply: tidy
        redis.call('HDEL', K.owners, reply)
        redis.call('ZREM', K.times, reply)
      end
    end
  end
end
local clock = redis.call('TIME')
taken[#taken + 1] = string.format('%.0f', tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000))
return taken
