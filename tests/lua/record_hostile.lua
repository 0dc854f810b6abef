-- Test probe: `count` history entries recorded in one call, each {[A.key] = A.value};
-- then the list's length and its newest entry.
for i = 1, tonumber(A.count) do
  local entry = {}
  entry[A.key] = A.value
  record(K.history, entry, A.at)
end
apply_pending()
return {redis.call('LLEN', K.history), redis.call('LINDEX', K.history, 0)}
