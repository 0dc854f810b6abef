"""The shared scripts' objects (scripts/*.lua beside this file): the ones the transport
layer and care use, whatever the service. Each names its keys and arguments (the order
the store sends them in) and its result; see script.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from smsgw.store.script import Script, json_result

SCRIPTS = Path(__file__).with_name("scripts")


class AddPartKeys(NamedTuple):
    parts: str  # the message's parts (a hash)
    open: str  # the sender's incomplete messages (a zset)


class AddPartArgs(NamedTuple):
    number: int
    total: int
    text: str
    ttl: int  # seconds, from the first part
    most_open: int  # incomplete messages a sender may have at once
    message_id: str  # the message's id, if this part is its first


class QueueKeys(NamedTuple):
    queue: str  # the sender's arrival queue (transport/ordering.py)


class TakeArgs(NamedTuple):
    ticket: str
    lease_ms: int


class NoArgs(NamedTuple):
    pass


class LeaveArgs(NamedTuple):
    ticket: str


class HashKeys(NamedTuple):
    hash: str


class CareKeys(NamedTuple):
    subscriber: str
    history: str


class CareArgs(NamedTuple):
    action: str  # unblock | reset_pin | topup
    at: str  # the moment (ISO)
    amount: int  # topup
    note: str  # the operator's


class UpsertArgs(NamedTuple):
    plan: str
    balance: int
    bill: int
    language: str
    replace: int  # 1/0: a known subscriber's balance and bill too
    at: str


ADD_PART = Script(SCRIPTS / "add_part.lua", AddPartKeys, AddPartArgs, list[Any])
# candidate hashes, and the field to drop from each (any number)
CONFIRM = Script(SCRIPTS / "confirm.lua", list[str], list[str], int)
ORDER_TAKE = Script(SCRIPTS / "order_take.lua", QueueKeys, TakeArgs, str)
ORDER_HEAD = Script(SCRIPTS / "order_head.lua", QueueKeys, NoArgs, str)
ORDER_LEAVE = Script(SCRIPTS / "order_leave.lua", QueueKeys, LeaveArgs, int)
class JournalIndexKeys(NamedTuple):
    shard: str  # the shard of the journal index (a zset)


class JournalIndexArgs(NamedTuple):
    member: str  # "<sender>|<txid>"
    at_ms: str  # when it was debited: add it; "": drop it


JOURNAL_INDEX = Script(SCRIPTS / "journal_index.lua", JournalIndexKeys, JournalIndexArgs, int)
# the fields to read (any number)
READ_FIELDS = Script(SCRIPTS / "read_fields.lua", HashKeys, list[str], list[str | None])
CARE = Script(SCRIPTS / "care.lua", CareKeys, CareArgs, json_result(dict[str, Any]))
UPSERT_SUBSCRIBER = Script(SCRIPTS / "upsert_subscriber.lua", CareKeys, UpsertArgs, str)


class IdempotencyKeys(NamedTuple):
    record: str  # what one Idempotency-Key holds (its own slot; transport/idempotency.py)


class ReserveArgs(NamedTuple):
    fingerprint: str  # the request's route and body, hashed
    owner: str  # a token of the request doing the work
    lease_seconds: int  # a pending record lapses if its owner dies before finishing


class FinishArgs(NamedTuple):
    owner: str
    answer: str  # "" gives the key back
    lifetime_seconds: int


IDEMPOTENCY_RESERVE = Script(SCRIPTS / "idempotency_reserve.lua", IdempotencyKeys,
                             ReserveArgs, list[str])
IDEMPOTENCY_FINISH = Script(SCRIPTS / "idempotency_finish.lua", IdempotencyKeys, FinishArgs,
                            int)
