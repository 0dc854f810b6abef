"""The live gateway: SMPP messages in, the pipeline, replies out, everything logged.

Per message: reassemble parts (durably, in the store, until the whole is applied) ->
wait for the sender's earlier messages (arrival order per subscriber) -> pipeline ->
answer the deliver_sm (ESME_ROK, or ESME_RX_T_APPN while the store is down) -> submit
the replies.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections import deque
from datetime import datetime

from smsgw.app import App
from smsgw.core import masking
from smsgw.core.clock import now
from smsgw.core.text import any_number_to_canonical
from smsgw.messages import Inbound, Outbound, Redelivery
from smsgw.observability import metrics
from smsgw.observability.logs import get_logger
from smsgw.services.otp.events import request_of_receipt
from smsgw.store import Assembly, PartLimits, StoreUnavailable
from smsgw.transport.heartbeat import RecentTraffic, beating
from smsgw.transport.msglog import MessageLog, format_record
from smsgw.transport.ordering import KeyedOrder, SharedOrder
from smsgw.transport.smpp.client import Confirm, MoMessage, Receipt, SmppClient
from smsgw.transport.smpp.pdu import ESME_ROK, ESME_RX_P_APPN, ESME_RX_T_APPN

log = get_logger("smsgw.transport.gateway")
CONFIRM_BATCH_SECONDS = 0.05
MAX_PROCESSING = 256
RECOVERY_INTERVAL_SECONDS = 60.0
MAX_REMEMBERED_ATTEMPTS = 100_000
STORE_DOWN_LOG_SECONDS = 5.0
# Concatenated messages: commands are short, so a message of more parts than this, or a
# part longer than an SMS can carry (a message_payload TLV in a part), is no command;
# one sender may have this many incomplete at once (each part names its total: so at
# most MAX_PARTS parts each); a message's parts wait for the rest a fixed time after its
# first part (the redelivery window), then expire.
MAX_PARTS = 32
MAX_PART_CHARACTERS = 160
MAX_OPEN_MESSAGES_PER_SENDER = 8
MIN_PARTS_TTL_SECONDS = 60
# What to answer a part that is not (yet) a whole message
PART_STATUSES = {"partial": ESME_ROK, "too_long": ESME_RX_P_APPN,
                 "too_many": ESME_RX_P_APPN, "total_changed": ESME_RX_P_APPN}


def _parts_key(message: MoMessage) -> str:
    """One concatenated message of a sender: its short code and reference number."""
    assert message.part is not None
    return f"{message.destination}:{message.part[0]}"


class Gateway:
    """The SMPP client's handler: turns wire messages into pipeline calls."""

    def __init__(self, app: App, message_log: MessageLog | None = None) -> None:
        self.app = app
        self._log = message_log
        cfg = app.settings.smsc
        self.client = SmppClient(cfg, app.settings.smsc_password, self, cfg.message_id_tlv)
        self._order = SharedOrder(app.store) if cfg.order_across_binds else KeyedOrder()
        # Messages in processing at once: beyond this they wait (cheaply, unanswered), so
        # an SMSC with a huge window cannot drown the event loop and the store pool.
        self._processing = asyncio.Semaphore(MAX_PROCESSING)
        self._window = cfg.redelivery_window_seconds
        self._response_timer = cfg.response_timer_seconds
        self._counter = itertools.count(1)
        self._to_confirm: list[tuple[str, str, str]] = []
        self._confirm_task: asyncio.Task[None] | None = None
        self._reply_tasks: set[asyncio.Future[list[str]]] = set()
        # Attempts answered with a temporary error after the store failed mid-call: they
        # may have been applied, so the SMSC's next delivery of the same message reuses
        # their id and candidate field (oldest first): (sender, digest) -> [(id, field)].
        self._uncertain: dict[tuple[str, str], deque[tuple[str, str]]] = {}
        self._store_down_logged = float("-inf")
        self._store_down_count = 0
        self._short_codes = app.pipeline.short_codes
        self._part_limits = PartLimits(max(self._window, MIN_PARTS_TTL_SECONDS),
                                       MAX_OPEN_MESSAGES_PER_SENDER)
        self.recent = RecentTraffic()  # for the heartbeat (console, /v1/status)
        self._sent_events: dict[str, asyncio.Task[None]] = {}  # otp.sent, by request id

    async def run(self) -> None:
        await self.app.store.load_scripts()
        self._confirm_task = asyncio.create_task(self._confirm_loop())
        recovery = (asyncio.create_task(self._recovery_loop())
                    if self.app.store.single_slot else None)
        try:
            async with beating(self):
                await self.client.run()
        finally:
            self._confirm_task.cancel()
            if recovery is not None:
                recovery.cancel()
            await self._flush_confirms()
            if self._log is not None:
                self._log.flush()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        await self.client.stop(drain_timeout)
        if self._reply_tasks:
            log.info("waiting for replies", replies=len(self._reply_tasks))
            await asyncio.wait(set(self._reply_tasks), timeout=drain_timeout)

    async def settle(self) -> None:
        """Wait until every reply decided so far was accepted by the SMSC (or refused),
        and the message log holds them all."""
        while self._reply_tasks:
            await asyncio.wait(set(self._reply_tasks))
        if self._sent_events:
            await asyncio.wait(set(self._sent_events.values()))
        if self._log is not None:
            self._log.flush()

    # -- inbound ------------------------------------------------------------------------

    async def on_message(self, message: MoMessage, session: str) -> tuple[int, Confirm | None]:
        # Overload is shed by the transport before a task exists (smpp/client.py); here
        # only the number of messages in processing at once is bounded.
        received = time.perf_counter()
        async with self._processing:
            return await self._process(message, session, received)

    async def _process(self, message: MoMessage, session: str,
                       received: float) -> tuple[int, Confirm | None]:
        sender = any_number_to_canonical(message.source)
        service = self._service_label(message.destination)
        try:
            assembly = await self._whole_text(message, sender, session)
        except StoreUnavailable:
            return ESME_RX_T_APPN, None
        if assembly.state != "whole":
            # a part kept until the rest arrives (ROK), or one refused for good
            status = PART_STATUSES[assembly.state]
            if status != ESME_ROK:
                metrics.message_in(service, "part_refused").inc()
            return status, None
        try:
            # the Inbound is made in the sender's turn: an earlier attempt of the same
            # message that ended uncertain (below) is known by then
            async with self._order.hold(sender):
                inbound = self._inbound(message, sender, assembly, session)
                try:
                    replies = await self.app.pipeline.handle(inbound)
                except StoreUnavailable:
                    self._remember_uncertain(inbound, "store_failed")
                    raise
                late = time.perf_counter() - received > self._response_timer
                if late:  # the SMSC may have given up on this answer and deliver it again
                    self._remember_uncertain(inbound, "late_answer")
        except StoreUnavailable as exc:
            metrics.message_in(service, "store_down").inc()
            self._store_down_warning(str(exc))
            return ESME_RX_T_APPN, None
        if message.part is not None:
            await self._forget_parts(message, sender)
        self._record_inbound(inbound)
        metrics.observe_replies(service, replies, time.perf_counter() - received)
        self._send(inbound, replies)
        return ESME_ROK, None if late else self._confirmation(inbound)

    def _service_label(self, short_code: str) -> str:
        """A metric label: a configured short code, else "other" (never what a sender
        chose)."""
        return short_code if short_code in self._short_codes else "other"

    async def _whole_text(self, message: MoMessage, sender: str, session: str) -> Assembly:
        if message.part is None:
            return Assembly("whole", message.text)
        _, number, total = message.part
        if total > MAX_PARTS or len(message.text) > MAX_PART_CHARACTERS:
            return Assembly("too_long")
        return await self.app.store.add_part(
            sender, _parts_key(message), number, total, message.text, self._part_limits,
            f"{session}-p{next(self._counter)}")

    async def _forget_parts(self, message: MoMessage, sender: str) -> None:
        """After the command is applied (its outcome stored under the message's id, so a
        part delivered again meanwhile applies nothing twice). If this fails, the parts
        expire by themselves."""
        try:
            await self.app.store.forget_parts(sender, _parts_key(message))
        except StoreUnavailable as exc:
            log.warning("cannot drop the parts of an applied message: they will expire",
                        error=str(exc))

    def _inbound(self, message: MoMessage, sender: str, assembly: Assembly,
                 session: str) -> Inbound:
        hasher = self.app.hasher
        at = now()
        text = assembly.text
        # The id the gateway gave a concatenated message at its first part (the parts
        # stay until it is applied, so a retry finds it again), or the SMSC's message id
        # (not an empty one: every message would be a repeat of the first): the same id
        # is never applied twice
        given_id = assembly.message_id or message.smsc_id
        if given_id:
            return Inbound(sender, message.destination, text, at, msg_id=given_id,
                           identity=hasher.message_identity("id", sender, given_id),
                           remember_seconds=self._window)
        digest = hasher.message_identity("wire", message.destination, text)
        earlier = self._uncertain.get((sender, digest))
        if earlier:
            msg_id, field = earlier.popleft()
            if not earlier:
                del self._uncertain[(sender, digest)]
            redelivery = Redelivery(digest, field, self._window, retry=True)
        else:
            msg_id = f"{session}-{next(self._counter)}"
            redelivery = Redelivery(digest, f"{time.time_ns():020d}|{session}", self._window)
        return Inbound(sender, message.destination, text, at, msg_id=msg_id,
                       identity=hasher.message_identity("id", sender, msg_id),
                       redelivery=redelivery)

    def _store_down_warning(self, error: str) -> None:
        """One warning per few seconds of an outage, not one per message."""
        self._store_down_count += 1
        if time.monotonic() - self._store_down_logged >= STORE_DOWN_LOG_SECONDS:
            log.warning("store unavailable: asking the SMSC to deliver again",
                        error=error, messages=self._store_down_count)
            self._store_down_logged = time.monotonic()
            self._store_down_count = 0

    def _remember_uncertain(self, inbound: Inbound, cause: str) -> None:
        metrics.UNCERTAIN_ANSWERS.labels(cause=cause).inc()
        redelivery = inbound.redelivery
        if redelivery is None or inbound.msg_id is None:
            return  # an SMSC message id makes the redelivery recognisable by itself
        if len(self._uncertain) >= MAX_REMEMBERED_ATTEMPTS:
            self._uncertain.pop(next(iter(self._uncertain)))  # the oldest sender's
        self._uncertain.setdefault((inbound.sender, redelivery.digest), deque()).append(
            (inbound.msg_id, redelivery.field))

    def _confirmation(self, inbound: Inbound) -> Confirm | None:
        redelivery = inbound.redelivery
        if redelivery is None:
            return None
        entry = (inbound.sender, redelivery.digest, redelivery.field)
        return lambda: self._to_confirm.append(entry)

    async def _confirm_loop(self) -> None:
        while True:
            await asyncio.sleep(CONFIRM_BATCH_SECONDS)
            await self._flush_confirms()
            if self._log is not None:
                self._log.flush()

    async def _recovery_loop(self) -> None:
        """Journaled transfers (a cluster): finish those that a crashed or stopped gateway
        left half-done, now (a keyspace scan) and then every minute (by the journal
        index; services/transfer.py, `recover`)."""
        full = True  # the first pass scans: journals from before the index, too
        while True:
            try:
                counts = await self.app.transfer.recover(now(), full=full)
                full = False
            except StoreUnavailable as exc:
                log.warning("transfer recovery: store unavailable", error=str(exc))
            else:
                finished = {k: v for k, v in counts.items() if k != "young"}
                for outcome in ("settled", "reversed"):
                    metrics.TRANSFERS_RECOVERED.labels(outcome=outcome).inc(counts[outcome])
                if finished:
                    log.warning("transfer recovery finished transfers left half-done",
                                **finished)
            await asyncio.sleep(RECOVERY_INTERVAL_SECONDS)

    async def _flush_confirms(self) -> None:
        if not self._to_confirm:
            return
        batch, self._to_confirm = self._to_confirm, []
        try:
            await self.app.store.confirm_answered(batch)
        except StoreUnavailable:
            self._to_confirm.extend(batch)  # they expire by themselves if this never works

    async def on_receipt(self, receipt: Receipt) -> None:
        metrics.receipt(receipt.state)
        if receipt.tag is not None:
            msisdn, _, about = receipt.tag.partition("|")
            await self.app.store.append_history(msisdn, {
                "kind": "receipt", "at": now().isoformat(), "message_id": receipt.message_id,
                "state": receipt.state, "error": receipt.error, "about": about})
            await self._otp_receipt_event(about, receipt)

    # -- outbound -----------------------------------------------------------------------

    def deliver(self, messages: list[Outbound]) -> None:
        """Send messages that answer no inbound SMS (OTPs the payment system asked for)."""
        self._send(None, messages)

    async def health(self) -> dict[str, object]:
        return {"store": await self.app.store.ping(), "smsc_bound": self.client.bound}

    def _send(self, inbound: Inbound | None, replies: list[Outbound]) -> None:
        for reply in replies:
            tag = f"{reply.to}|{reply.receipt_about or reply.kind}" if reply.receipt else None
            accepted = self.client.submit_nowait(reply.sender, reply.to, reply.text, tag)
            self._reply_tasks.add(accepted)
            accepted.add_done_callback(functools.partial(self._submitted, inbound, reply))

    def _submitted(self, inbound: Inbound | None, reply: Outbound,
                   done: asyncio.Future[list[str]]) -> None:
        self._reply_tasks.discard(done)
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if error is not None:  # a refused submit is logged; it must not go unnoticed
            metrics.message_out(reply.kind, "refused").inc()
            log.error("reply refused by the SMSC", kind=reply.kind, error=str(error))
            return
        ids = done.result()
        metrics.message_out(reply.kind, "accepted").inc()
        self._record_outbound(inbound, reply, ids[0] if ids else "")
        self._otp_sent_event(reply, ids[0] if ids else "")

    # -- webhook events (services/otp/events.py): off the SMS path ----------------------

    def _otp_sent_event(self, reply: Outbound, message_id: str) -> None:
        request_id = request_of_receipt(reply.receipt_about or "")
        if request_id is None or not self.app.otp.events.enabled:
            return
        task = asyncio.create_task(self.app.otp.events.sent(request_id, message_id))
        self._sent_events[request_id] = task
        task.add_done_callback(lambda _: self._sent_events.pop(request_id, None))

    async def _otp_receipt_event(self, about: str, receipt: Receipt) -> None:
        request_id = request_of_receipt(about)
        if request_id is None:
            return
        sent = self._sent_events.get(request_id)
        if sent is not None:  # otp.sent first: events of a request go out in order
            await asyncio.wait([sent])
        await self.app.otp.events.receipt(request_id, receipt.state, receipt.error)

    # -- message log --------------------------------------------------------------------

    def _record_inbound(self, inbound: Inbound) -> None:
        self.recent.inbound(inbound, lambda message: masking.inbound_text(
            message, self.app.pipeline.log_view(message), self.app.hasher))
        if self._log is not None:
            text = masking.inbound_text(inbound, self.app.pipeline.log_view(inbound),
                                        self.app.hasher)
            self._log.write(format_record(inbound.at, inbound.sender, inbound.to, text,
                                          inbound.msg_id or ""))

    def _record_outbound(self, inbound: Inbound | None, reply: Outbound,
                         message_id: str) -> None:
        self.recent.outbound(reply, masking.reply_text)
        if self._log is not None:
            at: datetime = now()
            # an OTP asked for over HTTP answers no SMS: it is logged as its own record
            in_reply_to = inbound.msg_id if inbound is not None else None
            self._log.write(format_record(at, reply.sender, reply.to, masking.reply_text(reply),
                                          message_id, in_reply_to=in_reply_to))
