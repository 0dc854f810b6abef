-- One failed console sign-in for a name: count it, and (re)start the lock period.
-- KEYS: 1 the name's failure counter   ARGV: 1 seconds the count (and a lock) lasts
-- Returns the failures in a row so far.
local failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return failures
