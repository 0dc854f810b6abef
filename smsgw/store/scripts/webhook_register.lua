-- Register an OTP request for webhook events (services/otp/events.py): its card's last
-- four digits, open for a verdict, and its OTP's expiry (for the otp.expired sweep). A
-- request that sent no SMS is registered by the same commands under another key, which
-- no event reads: it gets no events, by the same work.
-- KEYS: 1 the request's registration (or its silent twin), 2 the expiry index (zset)
-- ARGV: 1 last four, 2 expires (epoch s), 3 request id, 4 registration lifetime (s)
redis.call('HSET', KEYS[1], 'last4', ARGV[1], 'state', 'open')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[3])
return 1
