-- Test probe: a one-key table as the prelude's to_json writes it.
local t = {}
t[A.key] = 1
return {to_json(t), cjson.encode(t)}
