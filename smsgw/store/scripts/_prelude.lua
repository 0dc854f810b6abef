-- Prepended to every command script (Store loads it in front). The "envelope" is the
-- first 2 KEYS and 6 ARGV of every command script:
--   KEYS[1] processed-message key   KEYS[2] redelivery candidates (a hash)
--   ARGV[1] remember (1/0)  ARGV[2] processed ttl  ARGV[3] session ('' = none)
--   ARGV[4] candidate field ("<ns>|<session>")   ARGV[5] redelivery window (s)
--   ARGV[6] retry (1/0): the gateway answered an earlier attempt of this very message
--           with a temporary error after the store failed mid-call, so that attempt
--           may have run: its candidate (same field) is its outcome, on any session
-- A script's own keys and args follow: K(1) = KEYS[3], A(1) = ARGV[7].
--
-- Idempotency: a message with an identity is answered from its stored outcome.
-- Redelivery (interfaces.md): every outcome of a wire message is kept as a candidate
-- under (sender, short code, text) until the gateway confirms that its deliver_sm_resp
-- went out on a healthy link. The first identical message from another session (the
-- link dropped, or the gateway restarted) claims the oldest candidate: it gets that
-- outcome, and nothing is applied again. A message on the same session never claims.

local function K(i) return KEYS[i + 2] end
local function A(i) return ARGV[i + 6] end

local function claim_redelivery()
  local session = ARGV[3]
  local entries = redis.call('HGETALL', KEYS[2])
  local best_field, best_value
  local suffix = '|' .. session
  for i = 1, #entries, 2 do
    local f = entries[i]
    if string.sub(f, -#suffix) ~= suffix and (best_field == nil or f < best_field) then
      best_field, best_value = f, entries[i + 1]
    end
  end
  if best_field then
    redis.call('HDEL', KEYS[2], best_field)
    return best_value
  end
  return nil
end

local function already_answered()
  if ARGV[1] == '1' then
    local seen = redis.call('GET', KEYS[1])
    if seen then return seen end
  end
  if ARGV[6] == '1' then
    local own = redis.call('HGET', KEYS[2], ARGV[4])
    if own then return own end
  end
  if ARGV[3] ~= '' then return claim_redelivery() end
  return nil
end

local function finish(outcome)
  local encoded = cjson.encode(outcome)
  if ARGV[1] == '1' then redis.call('SET', KEYS[1], encoded, 'EX', ARGV[2]) end
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[4], encoded)
    redis.call('EXPIRE', KEYS[2], ARGV[5])
  end
  return encoded
end
