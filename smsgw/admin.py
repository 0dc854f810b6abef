"""Operator (customer-care) actions on the store. The CLI prints; this module decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smsgw.config import TransferSettings
from smsgw.core.clock import period_of
from smsgw.core.hashing import Hasher
from smsgw.core.money import MONEY_CEILING
from smsgw.services.otp.cards import last_four
from smsgw.services.otp.store import CardStore
from smsgw.store import Store, SubscriberRow


class UnknownSubscriber(Exception):
    def __init__(self, msisdn: str) -> None:
        super().__init__(f"unknown subscriber {msisdn}")
        self.msisdn = msisdn


class CareRefused(Exception):
    """A care action refused, nothing changed: `bad_input` when the operator asked for
    what no one may (a top-up beyond the money ceiling), else the stored data is at fault."""

    def __init__(self, message: str, bad_input: bool) -> None:
        super().__init__(message)
        self.bad_input = bad_input


@dataclass(frozen=True)
class LoadReport:
    added: int
    updated: int
    replaced: int


async def load_subscribers(
    store: Store, rows: list[SubscriberRow], replace: bool, at: datetime
) -> LoadReport:
    outcomes = await store.upsert_subscribers(rows, replace, at.isoformat())
    return LoadReport(
        added=outcomes.count("added"),
        updated=outcomes.count("updated"),
        replaced=outcomes.count("replaced"),
    )


async def show(store: Store, msisdn: str, at: datetime, cfg: TransferSettings) -> dict[str, Any]:
    fields = await store.subscriber(msisdn)
    if not fields:
        raise UnknownSubscriber(msisdn)
    period = period_of(at, cfg.timezone, cfg.calendar)
    sent_today, sent_this_month = await store.sent_in(msisdn, period.day, period.month)
    prepaid = fields.get("plan") == "prepaid"
    return {
        "msisdn": msisdn,
        "plan": fields.get("plan"),
        "balance": _stored_number(fields.get("balance")) if prepaid else 0,
        "bill": 0 if prepaid else _stored_number(fields.get("bill")),
        "language": fields.get("lang") or "",
        "pin_set": bool(fields.get("pin")),
        "blocked": fields.get("blocked") == "1",
        "failed_pin_attempts": _stored_number(fields.get("strikes")),
        "sent_today": sent_today,
        "sent_this_month": sent_this_month,
        "fees_paid": _stored_number(fields.get("fees_paid")),
        "at": at.isoformat(),
    }


def _stored_number(value: str | None) -> int | str:
    """A stored count or amount; what the store holds, as it is, if that is no number (a
    hand-edited or legacy store: care should see what is wrong, not a traceback)."""
    try:
        return int(value or 0)
    except ValueError:
        return value or ""


async def care(
    store: Store, msisdn: str, action: str, at: datetime, amount: int = 0
) -> dict[str, Any]:
    """unblock, reset_pin, or topup by `amount` rials (1..MONEY_CEILING, and the balance or
    bill stays within the ceiling: else CareRefused, nothing changed)."""
    if action == "topup" and not 1 <= amount <= MONEY_CEILING:
        raise CareRefused(f"a top-up is 1 to {MONEY_CEILING:,} rials, not {amount:,}",
                          bad_input=True)
    result = await store.care_action(msisdn, action, at.isoformat(), amount=amount)
    status = result["status"]
    if status == "unknown":
        raise UnknownSubscriber(msisdn)
    if status == "beyond_ceiling":
        field = result["field"]
        raise CareRefused(
            f"the {field} of {msisdn} is {int(result[field]):,} rials: a top-up of "
            f"{amount:,} would take it beyond the ceiling of {MONEY_CEILING:,}; nothing "
            "changed", bad_input=True)
    if status == "unreadable":
        raise CareRefused(f"the stored {result['field']} of {msisdn} is not a number of "
                          "rials within the ceiling; nothing changed", bad_input=False)
    return result


class CardProblem(Exception):
    """A card action that cannot be done (unknown card, already registered)."""


async def card_add(store: Store, hasher: Hasher, number: str, mobile: str, card_type: str,
                   static_password: str, at: datetime) -> None:
    card_hash = hasher.card_digest(number)
    result = await CardStore(store).card_action(
        "add", card_hash, at.isoformat(), last4=last_four(number), card_type=card_type,
        mobile=mobile, static_digest=hasher.static_digest(card_hash, static_password))
    if result["status"] == "exists":
        raise CardProblem(f"card …{last_four(number)} is already registered")


async def card_action(store: Store, hasher: Hasher, number: str, action: str, at: datetime,
                      mobile: str = "") -> None:
    await card_action_by_digest(store, hasher.card_digest(number), last_four(number), action,
                                at, mobile)


async def card_action_by_digest(store: Store, card_hash: str, last4: str, action: str,
                                at: datetime, mobile: str = "") -> None:
    """The same, for a card known by its digest (the console never holds the number)."""
    result = await CardStore(store).card_action(action, card_hash, at.isoformat(), mobile=mobile)
    if result["status"] == "unknown":
        raise CardProblem(f"card …{last4} is not registered")


async def card_show(store: Store, hasher: Hasher, number: str) -> dict[str, Any]:
    return await card_show_by_digest(store, hasher.card_digest(number), last_four(number))


async def card_show_by_digest(store: Store, card_hash: str, last4: str) -> dict[str, Any]:
    fields = await store.card(card_hash)
    if not fields:
        raise CardProblem(f"card …{last4} is not registered")
    return {"card": f"…{fields.get('last4', '')}", "type": fields.get("type"),
            "mobile": fields.get("mobile"), "state": fields.get("state"),
            "otp_state": fields.get("otp_state") or "none"}


async def card_history(store: Store, hasher: Hasher, number: str) -> list[dict[str, Any]]:
    return await store.card_history(hasher.card_digest(number))
