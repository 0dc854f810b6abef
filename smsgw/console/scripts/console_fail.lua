-- One console sign-in attempt for a name, counted before its password is checked (a
-- success forgets the count), so that concurrent guesses cannot all pass a lock check
-- made before any of them failed: a name with `max_failures` in a row is locked, and
-- its attempts are refused unchecked (without restarting the lock period).
-- Returns the attempts in a row so far, this one included, or -1: locked.
local failures = tonumber(redis.call('GET', K.counter) or '0')
if failures >= tonumber(A.max_failures) then return -1 end
failures = redis.call('INCR', K.counter)
redis.call('EXPIRE', K.counter, tonumber(A.lock_seconds))
return failures
