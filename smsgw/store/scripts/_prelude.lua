-- Prepended to every script, after the header that store/script.py generates: the
-- constants MONEY_CEILING (core/money.py) and HISTORY_LENGTH, and the tables that name
-- the call's keys and arguments: K (the script's keys), A (its arguments), E (the
-- envelope of a command script; empty in the others). Each script's Python object
-- decides their order; the Lua only uses names.
--
-- The envelope (E) of a command script: E.processed the processed-message key,
-- E.candidates the redelivery candidates (a hash); E.remember (1/0) and E.remember_ttl,
-- E.session ('' = none), E.candidate (the field "<ns>|<session>"), E.window (s), and
-- E.retry (1/0): the gateway answered an earlier attempt of this very message with a
-- temporary error after the store failed mid-call, so that attempt may have run: its
-- candidate (same field) is its outcome, on any session.
-- And the outbox (transport/outbox.py, "held with the command"): when E.hold_row is not
-- '', the outcome is also kept in the outbox shard E.held (E.held_owners, E.held_times)
-- under that row, owned by E.hold_owner, as E.hold_head .. outcome .. '}': the message's
-- replies are durable in the same atomic call that decided them (a successor renders
-- them again from the outcome), on a repeat as on the first delivery.
--
-- Idempotency: a message with an identity is answered from its stored outcome.
-- Redelivery (interfaces.md): every outcome of a wire message is kept as a candidate
-- under (sender, short code, text) until the gateway confirms that its deliver_sm_resp
-- went out on a healthy link. The first identical message from another session (the
-- link dropped, or the gateway restarted) claims the oldest candidate: it gets that
-- outcome, and nothing is applied again. A message on the same session never claims.

-- Money. MONEY_CEILING (in the header) is core/money.py's. Every balance, bill, amount,
-- fee and counter is a whole number of rials within +-MONEY_CEILING (10^15). Lua numbers
-- here are doubles, exact for whole numbers up to 2^53 (about 9 * 10^15): any sum of two
-- or three values within the ceiling is exact, so the checks below compare true values.
-- Redis does not roll back a script that fails half-way, so a money script reads and
-- checks everything before its first write, and never HINCRBYs a value it has not
-- checked (an overflow past 2^63 is an error, raised after whatever was written before
-- it).

-- The whole number of rials a stored or given text (or a number decoded from JSON)
-- holds, if it is one within +-bound (MONEY_CEILING unless given); nil for anything else
-- (junk, "1e5", "007", "-0", " 1", beyond). A missing value (nil, or false: how
-- redis.call gives a missing field or key) is `missing`.
local function rials(text, missing, bound)
  local value
  if text == nil or text == false then
    return missing
  elseif type(text) == 'number' then
    if text ~= math.floor(text) then return nil end
    value = text
  elseif type(text) == 'string' and #text <= 17
      and (text == '0' or string.find(text, '^%-?[1-9]%d*$')) then
    value = tonumber(text)
  else
    return nil
  end
  bound = bound or MONEY_CEILING
  if not (value >= -bound and value <= bound) then return nil end
  return value
end

-- The exact digits of a whole number (never "-0"), for redis.call and JSON.
local function whole(value)
  return string.format('%.0f', value + 0)
end

-- JSON of a flat table (an outcome, a history or journal entry). cjson writes numbers
-- with 14 significant digits (123456789012345 would become 1.2345678901234e+14): a table
-- whose numbers are all whole and below 10^14 (every amount and balance but the largest)
-- comes out exact from one cjson call, a quarter of the field-by-field cost; any other
-- is written field by field, whole numbers as exact digits.
local CJSON_EXACT = 1e14
local function cjson_exact(record)
  for key, value in pairs(record) do
    local kind = type(value)
    if type(key) ~= 'string' then return false end
    if kind == 'number' then
      if value ~= math.floor(value) or value >= CJSON_EXACT or value <= -CJSON_EXACT then
        return false
      end
    elseif kind ~= 'string' and kind ~= 'boolean' then
      return false
    end
  end
  return true
end

-- cjson's precision is the server's, for every script: set it back to 14 (another client's
-- EVAL may have lowered it, which would round money); the embedded store's cjson writes
-- exact numbers and has no such setting. An empty table is left to the field-by-field
-- writer (the embedded cjson writes it as an array).
local set_precision = cjson.encode_number_precision
local function to_json(record)
  if next(record) ~= nil and cjson_exact(record) then
    if set_precision then set_precision(14) end
    return cjson.encode(record)
  end
  local parts = {}
  for key, value in pairs(record) do
    local text
    if type(value) == 'number' and value == math.floor(value) and math.abs(value) < 2^53 then
      text = whole(value)
    else
      text = cjson.encode(value)
    end
    -- an ASCII name (every key our scripts write; %a would follow the C locale) needs
    -- no escaping: cjson only for others
    if type(key) == 'string' and string.find(key, '^[A-Za-z_][A-Za-z0-9_]*$') then
      parts[#parts + 1] = '"' .. key .. '":' .. text
    else
      parts[#parts + 1] = cjson.encode(tostring(key)) .. ':' .. text
    end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Writes a script has decided, done by `finish` (or `apply_pending`) once the outcome is
-- encoded: a script that checks first and writes through `later` cannot fail half-way.
local pending = {}
local function later(...)
  pending[#pending + 1] = {...}
end
local function apply_pending()
  for i = 1, #pending do redis.call(unpack(pending[i])) end
  pending = {}
end

-- A history entry (stamped `at`), newest first; the list keeps HISTORY_LENGTH entries.
-- Queued (`later`), as every write; a key that holds another type fails now.
-- Trimmed only once full (an LTRIM per entry was a write, and an AOF entry, for
-- nothing): the length counts this call's own entries not written yet (`recorded`).
local recorded = {}
local function record(key, entry, at)
  local length = redis.call('LLEN', key) + (recorded[key] or 0)
  recorded[key] = (recorded[key] or 0) + 1
  entry.at = at
  later('LPUSH', key, to_json(entry))
  if length >= HISTORY_LENGTH then later('LTRIM', key, 0, HISTORY_LENGTH - 1) end
end

-- The PIN-strike rule (credit-transfer.md), for every command that takes the transfer
-- PIN: a wrong PIN is a strike, and the strike that reaches `max_attempts` blocks the
-- service; each is recorded in the history. The refusal to finish with (wrong_pin,
-- blocked_now), or nil when the PIN is right or none is set yet (strikes back to 0).
-- `strikes`: the stored count, already read as a number. Writes are queued.
local function pin_strike(sender_key, history_key, stored_pin, given_pin, strikes,
                          max_attempts, at, lang)
  if not stored_pin or stored_pin == given_pin then
    if strikes ~= 0 then later('HSET', sender_key, 'strikes', '0') end
    return nil
  end
  strikes = strikes + 1
  later('HSET', sender_key, 'strikes', whole(strikes))
  if strikes >= max_attempts then
    later('HSET', sender_key, 'blocked', '1')
    record(history_key, {kind = 'blocked', by = 'wrong_pin', strikes = strikes}, at)
    return {status = 'blocked_now', lang = lang, max_attempts = max_attempts}
  end
  record(history_key, {kind = 'wrong_pin', strikes = strikes}, at)
  return {status = 'wrong_pin', lang = lang, attempts_left = max_attempts - strikes}
end

-- A candidate carried on by a redelivery (see earlier_outcome) has a sibling field,
-- its own name and CHAIN_MARK, holding the sessions it was delivered on (" s1 s2 "): a
-- delivery on one of those is no redelivery of it (a real one comes on a new link each
-- time; two healthy binds taking turns would otherwise pass one outcome from bind to
-- bind, and a run of deliberate repeats collapse into one command).
local CHAIN_MARK = '~'

local function session_of(field)
  return string.match(field, '|([^|]*)$') or ''
end

-- The oldest candidate of another session (and not of its chain): claimed (dropped),
-- with the chain of sessions it came through, this one added; nil if none.
local function claim_redelivery()
  local session = E.session
  local entries = redis.call('HGETALL', E.candidates)
  local values = {}
  for i = 1, #entries, 2 do values[entries[i]] = entries[i + 1] end
  local here = ' ' .. session .. ' '
  local best_field
  for f, _ in pairs(values) do
    if string.sub(f, -1) ~= CHAIN_MARK and session_of(f) ~= session
        and not string.find(values[f .. CHAIN_MARK] or '', here, 1, true)
        and (best_field == nil or f < best_field) then
      best_field = f
    end
  end
  if best_field == nil then return nil end
  local chain = values[best_field .. CHAIN_MARK] or (' ' .. session_of(best_field) .. ' ')
  redis.call('HDEL', E.candidates, best_field, best_field .. CHAIN_MARK)
  return values[best_field], chain .. session .. ' '
end

-- The store's clock, in ms (the outbox's times: what a successor reckons with).
local function clock_ms()
  local clock = redis.call('TIME')
  return string.format('%.0f', tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000))
end

-- Keep a row in an outbox shard, owned by `owner`; a row written again (the same reply
-- decided again: a redelivery) keeps its first time.
local function outbox_keep(entries, owners, times, row, entry, owner, created)
  redis.call('HSET', entries, row, entry)
  redis.call('HSET', owners, row, owner)
  redis.call('ZADD', times, 'NX', created, row)
end

-- The held row's keys are checked before the script's first write (a repeat claims its
-- redelivery candidate, an HDEL, before it holds the outcome): a key of another type
-- there fails the call with nothing changed, never after the claim (the next delivery
-- would find no candidate and apply the command again).
local held_checked = false
local function check_held()
  if E.hold_row ~= '' and not held_checked then
    redis.call('HLEN', E.held)
    redis.call('HLEN', E.held_owners)
    redis.call('ZCARD', E.held_times)
    held_checked = true
  end
end

local function hold(encoded)
  check_held()
  if E.hold_row ~= '' then
    outbox_keep(E.held, E.held_owners, E.held_times, E.hold_row,
                E.hold_head .. encoded .. '}', E.hold_owner, clock_ms())
  end
  return encoded
end

local function earlier_outcome()
  if E.remember == '1' then
    local seen = redis.call('GET', E.processed)
    if seen then return seen end
  end
  if E.retry == '1' then
    local own = redis.call('HGET', E.candidates, E.candidate)
    if own then return own end
  end
  if E.session ~= '' then
    local claimed, chain = claim_redelivery()
    if claimed then
      -- this attempt carries the outcome on as its own candidate: if its answer is lost
      -- too, the next delivery (on yet another session) finds it here; without it the
      -- third delivery applied the command again. Confirmed (dropped) like any other.
      redis.call('HSET', E.candidates, E.candidate, claimed, E.candidate .. CHAIN_MARK, chain)
      redis.call('EXPIRE', E.candidates, E.window)
    end
    return claimed
  end
  return nil
end

-- The outcome this message got before (a repeat: answered again, nothing applied), held
-- in the outbox again like a first outcome; nil if none.
local function already_answered()
  check_held()
  local seen = earlier_outcome()
  if seen then return hold(seen) end
  return nil
end

local function finish(outcome)
  local encoded = to_json(outcome)
  hold(encoded)  -- first: a key of another type there fails before any other write
  apply_pending()
  if E.remember == '1' then redis.call('SET', E.processed, encoded, 'EX', E.remember_ttl) end
  if E.session ~= '' then
    redis.call('HSET', E.candidates, E.candidate, encoded)
    redis.call('EXPIRE', E.candidates, E.window)
  end
  return encoded
end
