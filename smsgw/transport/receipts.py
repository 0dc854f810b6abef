"""Delivery receipts: a reply that asks for one is tagged at submit with what its receipt
is recorded against; the SMSC's receipt comes back with that tag and goes into the
recipient's history."""

from __future__ import annotations

from smsgw.core.clock import now
from smsgw.messages import Outbound
from smsgw.observability import metrics
from smsgw.store import Store
from smsgw.transport.smpp.client import Receipt


def receipt_tag(reply: Outbound) -> str | None:
    """"<recipient>|<about>" for a reply that wants a receipt, else None."""
    if not reply.receipt:
        return None
    return f"{reply.to}|{reply.receipt_about or reply.kind}"


async def record_receipt(store: Store, receipt: Receipt) -> None:
    metrics.receipt(receipt.state)
    if receipt.tag is not None:
        msisdn, _, about = receipt.tag.partition("|")
        await store.append_history(msisdn, {
            "kind": "receipt", "at": now().isoformat(), "message_id": receipt.message_id,
            "state": receipt.state, "error": receipt.error, "about": about})
