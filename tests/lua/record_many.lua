-- Test probe: `count` history entries recorded in one call (the prelude's record), then the list's length.
for i = 1, tonumber(A.count) do record(K.history, {kind = 'probe', n = i}, A.at) end
apply_pending()
return redis.call('LLEN', K.history)
