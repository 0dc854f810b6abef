"""What flows through the pipeline: one inbound message in, its replies out.

Transports (SMPP, message log, HTTP) build these; services never see anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Inbound:
    sender: str  # canonical MSISDN (or the raw address when it is no mobile number)
    to: str  # short code
    text: str
    at: datetime  # timezone-aware; the clock of every rule applied to this message
    msg_id: str | None = None
    identity: str | None = None  # keyed digest that makes a redelivery apply nothing


@dataclass(frozen=True, slots=True)
class Outbound:
    to: str  # canonical MSISDN
    sender: str  # the short code it answers from
    text: str
    kind: str  # e.g. "transfer.sent", "format.bad_pin": for metrics and receipts
    receipt: bool = False  # ask the SMSC for a delivery receipt
    secret: str | None = None  # a value in `text` that logs must mask (an OTP)
