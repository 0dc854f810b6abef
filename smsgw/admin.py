"""Operator (customer-care) actions on the store. The CLI prints; this module decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smsgw.clock import period_of
from smsgw.config import TransferSettings
from smsgw.store import Store, SubscriberRow


class UnknownSubscriber(Exception):
    def __init__(self, msisdn: str) -> None:
        super().__init__(f"unknown subscriber {msisdn}")
        self.msisdn = msisdn


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
        "balance": int(fields.get("balance") or 0) if prepaid else 0,
        "bill": 0 if prepaid else int(fields.get("bill") or 0),
        "language": fields.get("lang") or "",
        "pin_set": bool(fields.get("pin")),
        "blocked": fields.get("blocked") == "1",
        "failed_pin_attempts": int(fields.get("strikes") or 0),
        "sent_today": sent_today,
        "sent_this_month": sent_this_month,
        "fees_paid": int(fields.get("fees_paid") or 0),
        "at": at.isoformat(),
    }


async def care(
    store: Store, msisdn: str, action: str, at: datetime, amount: int = 0
) -> dict[str, Any]:
    result = await store.care_action(msisdn, action, at.isoformat(), amount=amount)
    if result["status"] == "unknown":
        raise UnknownSubscriber(msisdn)
    return result
