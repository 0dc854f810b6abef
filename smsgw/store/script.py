"""A Lua script as a typed object, as redis-py's `Script` is: it owns its source and SHA,
the names and order of its keys and arguments, and the type of its result.

The order is written once, here, as two NamedTuples (keys, arguments): the store sends
KEYS and ARGV in their field order, and generates a header in front of the script that
names them, so that the Lua refers to `K.sender` and `A.amount`, never to a position:

    local K = named({sender = KEYS[3], day = KEYS[4], ...})
    local A = named({pin = ARGV[7], amount = ARGV[8], ...})

A name the script reads but the tuple lacks is an error, not a nil. A command script
(`envelope=True`) is also handed the message's envelope first (table `E`: the processed
message key, the redelivery candidates; see scripts/_prelude.lua). A script whose keys or
arguments are a plain list (a variable number: confirm, read_fields) gets no table for
them and reads KEYS and ARGV itself. The encoding costs nothing per call: the tuple is
the positional list; only the header (loaded once, with the script) knows the names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar, cast

import orjson

from smsgw.core.money import MONEY_CEILING
from smsgw.messages import Inbound
from smsgw.store.keys import outbox_keys, processed_key, redelivery_key, unused_key

HISTORY_LENGTH = 1000  # entries kept per history list (scripts: HISTORY_LENGTH)
PRELUDE = Path(__file__).with_name("scripts") / "_prelude.lua"

KeysT = TypeVar("KeysT", bound=Sequence[str])
ArgsT = TypeVar("ArgsT", bound=Sequence[Any])
ResultT = TypeVar("ResultT")
T = TypeVar("T")

_LUA_WORDS = frozenset({
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"})
_HEADER = """\
local MONEY_CEILING = {ceiling}
local HISTORY_LENGTH = {history}
local named_only = {{__index = function(_, name)
  error('no key or argument named ' .. tostring(name), 2)
end}}
local function named(values) return setmetatable(values, named_only) end
"""


class EnvelopeKeys(NamedTuple):
    processed: str  # the message's stored outcome (a placeholder when not remembered)
    candidates: str  # the redelivery candidates of (sender, short code, text): a hash
    held: str  # the outbox shard that keeps its replies (placeholders when not held)
    held_owners: str
    held_times: str


class EnvelopeArgs(NamedTuple):
    remember: int  # 1/0: the message has an identity, and its outcome is remembered
    remember_ttl: int  # seconds
    session: str  # the wire session it came on ('' = none: no redelivery candidate)
    candidate: str  # its candidate's field, "<ns>|<session>"
    window: int  # how long a candidate is kept (s)
    retry: int  # 1/0: an earlier attempt of this very message may have run
    hold_row: str  # its outbox row ('' = its replies are not held by the script)
    hold_owner: str  # the gateway that sends them
    hold_head: str  # the row's JSON before the outcome


_registered: dict[str, Script[Any, Any, Any]] = {}


class Script(Generic[KeysT, ArgsT, ResultT]):
    """`path`: the .lua file; `keys`, `args`: a NamedTuple class each (or `list` for a
    variable number); `result`: what turns Redis's answer into the result."""

    def __init__(self, path: Path, keys: type[KeysT], args: type[ArgsT],
                 result: Callable[[Any], ResultT], *, envelope: bool = False) -> None:
        self.name = path.stem
        self.keys = keys
        self.args = args
        self.result = result
        self.envelope = envelope
        self.source = (self._header() + PRELUDE.read_text(encoding="utf-8")
                       + path.read_text(encoding="utf-8"))
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()  # as Redis computes it
        if _registered.setdefault(self.name, self) is not self:
            raise ValueError(f"two scripts named {self.name}")

    def __repr__(self) -> str:
        return f"Script({self.name})"

    def _header(self) -> str:
        header = _HEADER.format(ceiling=MONEY_CEILING, history=HISTORY_LENGTH)
        keys_before = args_before = 0
        if self.envelope:
            header += _table("E", [(name, f"KEYS[{i + 1}]")
                                   for i, name in enumerate(EnvelopeKeys._fields)]
                             + [(name, f"ARGV[{i + 1}]")
                                for i, name in enumerate(EnvelopeArgs._fields)])
            keys_before, args_before = len(EnvelopeKeys._fields), len(EnvelopeArgs._fields)
        else:
            header += _table("E", [])
        header += _table("K", _positions(self.keys, "KEYS", keys_before))
        return header + _table("A", _positions(self.args, "ARGV", args_before))


def registered() -> list[Script[Any, Any, Any]]:
    """Every script made so far (the store loads them all at once)."""
    return list(_registered.values())


def _positions(fields_of: type, array: str, before: int) -> list[tuple[str, str]]:
    names: tuple[str, ...] = getattr(fields_of, "_fields", ())
    for name in names:
        if name in _LUA_WORDS:
            raise ValueError(f"{name!r} is a Lua keyword: name it otherwise")
    return [(name, f"{array}[{before + i + 1}]") for i, name in enumerate(names)]


def _table(name: str, entries: list[tuple[str, str]]) -> str:
    fields = ", ".join(f"{field} = {value}" for field, value in entries)
    return f"local {name} = named({{{fields}}})\n"


def envelope(message: Inbound, may_hold: bool) -> tuple[EnvelopeKeys, EnvelopeArgs]:
    """The message's envelope: whether and how long its outcome is remembered, its
    redelivery candidate (interfaces.md), and, if `may_hold` (one server: any key in the
    call) and the outbox gave it a row, where its replies are held."""
    sender = message.sender
    remember = message.identity is not None and message.remember_seconds > 0
    processed = (processed_key(sender, message.identity)
                 if remember and message.identity is not None else unused_key(sender))
    redelivery = message.redelivery
    candidates = (unused_key(sender) if redelivery is None
                  else redelivery_key(sender, redelivery.digest))
    slot = message.hold
    if may_hold and slot is not None and slot.row:
        slot.used = True
        held, hold = outbox_keys(slot.shard), (slot.row, slot.owner, slot.head)
    else:
        held, hold = (unused_key(sender),) * 3, ("", "", "")
    if redelivery is None:
        return (EnvelopeKeys(processed, candidates, *held),
                EnvelopeArgs(int(remember), message.remember_seconds, "", "", 0, 0, *hold))
    return (
        EnvelopeKeys(processed, candidates, *held),
        EnvelopeArgs(int(remember), message.remember_seconds,
                     redelivery.field.partition("|")[2], redelivery.field,
                     redelivery.window_seconds, int(redelivery.retry), *hold),
    )


def json_result(kind: type[T]) -> Callable[[Any], T]:
    """A script's JSON answer, as the TypedDict (or dict) `kind`."""
    def decode(raw: Any) -> T:
        return cast(T, orjson.loads(raw))
    return decode
