"""The audit trail: every action by a person, through the console or `smsgw admin`.

Each entry holds who (a console user, or `cli:<OS user>`), when, the action, the subject
(an MSISDN, `card …1234`, or `user:NAME`), the reason and the state before and after.
The trail is one Redis stream (one key, so one slot on a cluster), appended to and never
trimmed: no interface edits or deletes it.

The operator actions themselves are admin.py's; the functions here wrap them with the
reading of the state before and after and the append, so the console and the CLI record
the same thing the same way.
"""

from __future__ import annotations

import getpass
import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from smsgw import admin
from smsgw.config import TransferSettings
from smsgw.core.hashing import Hasher
from smsgw.services.otp.cards import last_four
from smsgw.store import Store

AUDIT_KEY = "audit:{trail}"
MAX_REASON_CHARS = 500
SUBSCRIBER_FIELDS = ("plan", "balance", "bill", "pin_set", "blocked", "failed_pin_attempts")
CARD_FIELDS = ("state", "mobile", "type")


@dataclass(frozen=True)
class Actor:
    """Who acts, and why (the reason is kept as given, cleaned of control characters)."""

    name: str
    reason: str


def cli_actor(reason: str) -> Actor:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name, no passwd entry (a bare container)
        user = "unknown"
    return Actor(f"cli:{user}", clean_reason(reason))


def clean_reason(text: str) -> str:
    """Control characters (a terminal escape, a newline) become spaces; at most 500 chars."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > MAX_REASON_CHARS:
        raise ValueError(f"the reason is longer than {MAX_REASON_CHARS} characters")
    return cleaned


def card_subject(last4: str) -> str:
    return f"card …{last4}"


async def record(store: Store, actor: Actor, action: str, subject: str, at: datetime,
                 before: dict[str, Any], after: dict[str, Any]) -> None:
    entry = {"at": at.isoformat(), "who": actor.name, "action": action, "subject": subject,
             "reason": actor.reason, "before": before, "after": after}
    await store.plain(store.redis.xadd(AUDIT_KEY, {"entry": json.dumps(entry, ensure_ascii=False)}))


async def trail(store: Store, subject: str | None = None) -> list[dict[str, Any]]:
    """The whole trail, oldest first (of one subject, when given)."""
    found = await store.plain(store.redis.xrange(AUDIT_KEY))
    entries = [cast(dict[str, Any], json.loads(fields["entry"])) for _, fields in found]
    return [e for e in entries if subject is None or e["subject"] == subject]


# -- the audited operator actions --------------------------------------------------------

async def care(store: Store, cfg: TransferSettings, actor: Actor, msisdn: str, action: str,
               at: datetime, amount: int = 0) -> dict[str, Any]:
    """admin.care, recorded. An unknown number raises before anything is written."""
    before = await _subscriber_state(store, cfg, msisdn, at)
    result = await admin.care(store, msisdn, action, at, amount)
    after = await _subscriber_state(store, cfg, msisdn, at)
    shown = f"{action} {amount}" if action == "topup" else action
    await record(store, actor, shown, msisdn, at, before, after)
    return result


async def card(store: Store, actor: Actor, card_hash: str, last4: str, action: str,
               at: datetime, mobile: str = "") -> None:
    """admin.card_action_by_digest, recorded."""
    before = await _card_state(store, card_hash, last4)
    await admin.card_action_by_digest(store, card_hash, last4, action, at, mobile)
    after = await _card_state(store, card_hash, last4)
    await record(store, actor, f"card_{action}", card_subject(last4), at, before, after)


async def card_add(store: Store, hasher: Hasher, actor: Actor, number: str, mobile: str,
                   card_type: str, static_password: str, at: datetime) -> None:
    await admin.card_add(store, hasher, number, mobile, card_type, static_password, at)
    last4 = last_four(number)
    after = await _card_state(store, hasher.card_digest(number), last4)
    await record(store, actor, "card_add", card_subject(last4), at, {}, after)


async def _subscriber_state(store: Store, cfg: TransferSettings, msisdn: str,
                            at: datetime) -> dict[str, Any]:
    shown = await admin.show(store, msisdn, at, cfg)
    return {key: shown[key] for key in SUBSCRIBER_FIELDS}


async def _card_state(store: Store, card_hash: str, last4: str) -> dict[str, Any]:
    shown = await admin.card_show_by_digest(store, card_hash, last4)
    return {key: shown[key] for key in CARD_FIELDS}
