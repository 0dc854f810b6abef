-- Register an OTP request for webhook events (services/otp/events.py): its card's last
-- four digits, open for a verdict, and its OTP's expiry (for the otp.expired sweep). A
-- request that sent no SMS is registered by the same commands under another key, which
-- no event reads: it gets no events, by the same work.
redis.call('HSET', K.registration, 'last4', A.last4, 'state', 'open')
redis.call('EXPIRE', K.registration, tonumber(A.lifetime_seconds))
redis.call('ZADD', K.expiries, tonumber(A.expires_at), A.request_id)
return 1
