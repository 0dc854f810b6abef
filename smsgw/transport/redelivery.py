"""At-most-once delivery on the wire: the SMSC delivers a message again when our answer
was lost, late or a temporary error, and a repeat must apply nothing twice.

How a delivery is recognised as a repeat (the Python side; the store's scripts keep the
candidates and outcomes, scripts/_prelude.lua):
- by an id: the SMSC's message id (its TLV), or the id the gateway gave a concatenated
  message at its first part; the outcome stays under the keyed identity of that id;
- else by a *candidate*: the keyed digest of (short code, text), with one field per
  attempt ("<ns>|<session>"), kept for the redelivery window; identical texts share a
  digest, so a deliberate repeat on a healthy link still counts;
- an *uncertain attempt* (answered with a temporary error after the store failed
  mid-call, or answered too late): the SMSC's next delivery of the same message reuses
  its id and candidate field (`retry`), so an attempt that did run counts;
- *confirmation*: once an answer is safe (smpp/client.py: the link stayed up a moment
  after it) its candidate is dropped, in batches (store.confirm_answered).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from datetime import datetime

from smsgw.core.hashing import Hasher
from smsgw.core.records import record
from smsgw.messages import HoldSlot, Inbound
from smsgw.observability import metrics
from smsgw.store import Store, StoreUnavailable
from smsgw.transport.smpp.client import OnAnswerSafe, WireMessage

CONFIRM_BATCH_SECONDS = 0.05
MAX_REMEMBERED_ATTEMPTS = 100_000


@record
class Redelivery:
    """How a wire message without an id may be recognised when delivered again."""

    digest: str  # keyed digest of (short code, text): shared by identical messages
    field: str  # "<ns>|<session>": this attempt's candidate entry
    window_seconds: int
    retry: bool = False  # an earlier attempt (same field) may have run: its outcome counts


class Redeliveries:
    """The gateway's memory of attempts: the Inbound of each wire message, the uncertain
    ones, and the candidates waiting to be confirmed."""

    def __init__(self, store: Store, hasher: Hasher, window_seconds: int,
                 response_timer_seconds: float) -> None:
        self._store = store
        self._hasher = hasher
        self._window = window_seconds
        self._response_timer = response_timer_seconds
        self._counter = itertools.count(1)
        # (sender, digest) -> [(msg_id, field)], oldest first
        self._uncertain: dict[tuple[str, str], deque[tuple[str, str]]] = {}
        self._to_confirm: list[tuple[str, str, str]] = []

    def inbound(self, message: WireMessage, sender: str, text: str, given_id: str,
                session: str, at: datetime, hold: HoldSlot | None = None) -> Inbound:
        """The Inbound of a (whole) wire message. `given_id`: the id a concatenated
        message got at its first part, if any. Made in the sender's turn, so that an
        earlier uncertain attempt of the same message is known by then. `hold`: its
        outbox row, if its command may hold its replies (transport/outbox.py)."""
        # never an empty SMSC id: every message would be a repeat of the first
        known_id = given_id or message.smsc_id
        if known_id:
            return Inbound(sender, message.destination, text, at, msg_id=known_id,
                           identity=self._identity(sender, known_id),
                           remember_seconds=self._window, hold=hold)
        digest = self._hasher.message_identity("wire", message.destination, text)
        msg_id, redelivery = self._attempt(sender, digest, session)
        return Inbound(sender, message.destination, text, at, msg_id=msg_id,
                       identity=self._identity(sender, msg_id), redelivery=redelivery,
                       hold=hold)

    def _identity(self, sender: str, msg_id: str) -> str:
        return self._hasher.message_identity("id", sender, msg_id)

    def _attempt(self, sender: str, digest: str, session: str) -> tuple[str, Redelivery]:
        """An earlier uncertain attempt's id and field again, else new ones."""
        earlier = self._uncertain.get((sender, digest))
        if earlier:
            msg_id, field = earlier.popleft()
            if not earlier:
                del self._uncertain[(sender, digest)]
            return msg_id, Redelivery(digest, field, self._window, retry=True)
        field = f"{time.time_ns():020d}|{session}"
        return f"{session}-{next(self._counter)}", Redelivery(digest, field, self._window)

    def answered_late(self, received: float) -> bool:
        """Past the SMSC's response timer (perf_counter seconds since `received`): it may
        have given up on this answer and deliver the message again."""
        return time.perf_counter() - received > self._response_timer

    def remember_uncertain(self, inbound: Inbound, cause: str) -> None:
        metrics.UNCERTAIN_ANSWERS.labels(cause=cause).inc()
        redelivery = inbound.redelivery
        if redelivery is None or inbound.msg_id is None:
            return  # an id makes the redelivery recognisable by itself
        if len(self._uncertain) >= MAX_REMEMBERED_ATTEMPTS:
            self._uncertain.pop(next(iter(self._uncertain)))  # the oldest sender's
        self._uncertain.setdefault((inbound.sender, redelivery.digest), deque()).append(
            (inbound.msg_id, redelivery.field))

    def on_answer_safe(self, inbound: Inbound) -> OnAnswerSafe | None:
        """What the session calls once the answer to `inbound` is safe: queue its
        candidate for confirmation."""
        redelivery = inbound.redelivery
        if redelivery is None:
            return None
        entry = (inbound.sender, redelivery.digest, redelivery.field)
        return lambda: self._to_confirm.append(entry)

    async def confirm(self) -> None:
        """Drop the candidates of the answers found safe so far, in one batch."""
        if not self._to_confirm:
            return
        batch, self._to_confirm = self._to_confirm, []
        try:
            await self._store.confirm_answered(batch)
        except StoreUnavailable:
            self._to_confirm.extend(batch)  # they expire by themselves if this never works
