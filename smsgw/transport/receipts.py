"""Delivery receipts: a reply that asks for one is tagged at submit with what its receipt
is recorded against; the SMSC's receipt comes back with that tag and goes into the
recipient's history. An OTP SMS's acceptance and receipt are also events for the payment
system's webhooks (services/otp/events.py), recorded off the SMS path."""

from __future__ import annotations

import asyncio

from smsgw.core.clock import now
from smsgw.messages import Outbound
from smsgw.observability import metrics
from smsgw.services.otp.events import OtpEvents, request_of_receipt
from smsgw.store import Store
from smsgw.transport.smpp.client import Receipt


def receipt_tag(reply: Outbound) -> str | None:
    """"<recipient>|<about>" for a reply that wants a receipt, else None."""
    if not reply.receipt:
        return None
    return f"{reply.to}|{reply.receipt_about or reply.kind}"


async def record_receipt(store: Store, receipt: Receipt, events: DeliveryEvents) -> None:
    metrics.receipt(receipt.state)
    if receipt.tag is not None:
        msisdn, _, about = receipt.tag.partition("|")
        await store.append_history(msisdn, {
            "kind": "receipt", "at": now().isoformat(), "message_id": receipt.message_id,
            "state": receipt.state, "error": receipt.error, "about": about})
        await events.receipted(about, receipt)


class DeliveryEvents:
    """otp.sent once the SMSC accepted an OTP SMS, otp.delivered / otp.failed from its
    receipt: each recorded in a task of its own (never on the SMS path), in order per
    request (a receipt's event waits for its otp.sent)."""

    def __init__(self, events: OtpEvents) -> None:
        self._events = events
        self._sent: dict[str, asyncio.Task[None]] = {}  # by request id

    def accepted(self, reply: Outbound, message_id: str) -> None:
        request_id = request_of_receipt(reply.receipt_about or "")
        if request_id is None or not self._events.enabled:
            return
        task = asyncio.create_task(self._events.sent(request_id, message_id))
        self._sent[request_id] = task
        task.add_done_callback(lambda _: self._sent.pop(request_id, None))

    async def receipted(self, about: str, receipt: Receipt) -> None:
        request_id = request_of_receipt(about)
        if request_id is None:
            return
        sent = self._sent.get(request_id)
        if sent is not None:
            await asyncio.wait([sent])
        await self._events.receipt(request_id, receipt.state, receipt.error)

    async def drain(self) -> None:
        """Wait for the otp.sent events being recorded."""
        if self._sent:
            await asyncio.wait(set(self._sent.values()))
