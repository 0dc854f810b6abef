-- One failed console sign-in for a name: count it, and (re)start the lock period.
-- Returns the failures in a row so far.
local failures = redis.call('INCR', K.counter)
redis.call('EXPIRE', K.counter, tonumber(A.lock_seconds))
return failures
