-- A probe for tests/test_store_scripts.py: answers the named keys and arguments it is
-- given, in a fixed order; A.missing (when asked) is a name the tuple lacks.
if A.ask_missing == '1' then return A.missing end
return {K.first, K.second, A.word, A.number, whole(MONEY_CEILING), whole(HISTORY_LENGTH)}
