-- For tests/test_attack_store.py: counts each run of a call by its id (a call that ran
-- twice shows 2) and answers 1.
redis.call('HINCRBY', K.counts, A.id, 1)
return 1
