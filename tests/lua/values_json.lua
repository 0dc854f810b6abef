-- Test probe: a flat table as the prelude's to_json writes it. ARGV after the count: a
-- (key, kind, value) triple per field; kind n (a number), s (a string), b (a boolean).
local t = {}
for i = 2, #ARGV, 3 do
  local key, kind, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 'n' then t[key] = tonumber(value)
  elseif kind == 'b' then t[key] = value == '1'
  else t[key] = value end
end
return to_json(t)
