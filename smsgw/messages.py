"""What flows through the router: one inbound message in, its replies out.

Transports (SMPP, message log, HTTP) build these; services never see anything else.
Each transport has its own form of a message below these (smpp's WireMessage: a whole
message or one part as delivered; the message log's LoggedMessage: one line of the log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from smsgw.core.records import record

if TYPE_CHECKING:  # made by the SMPP transport only; the store reads it
    from smsgw.transport.redelivery import Redelivery


@record
class Inbound:
    """A whole mobile-originated message, as every service receives it."""

    sender: str  # canonical MSISDN (or the raw address when it is no mobile number)
    to: str  # short code
    text: str
    at: datetime  # timezone-aware; the clock of every rule applied to this message
    msg_id: str | None = None
    identity: str | None = None  # keyed digest: the same identity is never applied twice
    remember_seconds: int = 0  # how long the outcome stays under `identity`
    redelivery: Redelivery | None = None
    from_log: bool = False  # read back from a message log (replay): PIN tokens count
    # what its service parsed of `text`, by service: one parse per message, which the
    # service's log view (masking.py) reads again instead of parsing twice
    parsed: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    # where its command script keeps its replies in the outbox (transport/outbox.py)
    hold: HoldSlot | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class HoldSlot:
    """An outbox row for a message's replies, written by the command script that decides
    them (store/script.py's envelope): its outcome, from which the message's service
    renders the replies again for a successor. Filled in by the outbox before routing;
    `used` once a command script was given it."""

    shard: int = 0
    row: str = ""
    owner: str = ""
    head: str = ""  # the row's JSON up to its outcome: `head + outcome + "}"`
    used: bool = False
    pending: bool = False  # its row may be being written: in hand (outbox.holds)


@record
class Outbound:
    to: str  # canonical MSISDN
    sender: str  # the short code it answers from
    text: str
    kind: str  # e.g. "transfer.sent", "format.bad_pin": for metrics and receipts
    receipt: bool = False  # ask the SMSC for a delivery receipt
    secret: str | None = None  # a value in `text` that logs must mask (an OTP): masking.py
    receipt_about: str = ""  # what a delivery receipt is recorded against, in the history
