"""The live gateway: wire -> router -> wire. The SMPP client's handler.

Per message: reassemble parts (reassembly.py) -> wait for the sender's earlier messages
(ordering.py) -> make its Inbound (redelivery.py) -> the router -> answer the deliver_sm
(ESME_ROK, or ESME_RX_T_APPN while the store is down) -> submit the replies, tagged for
their receipts (receipts.py), and write both to the message log (msglog.py). The replies
are durable in the outbox (outbox.py) before the answer, and leave it once the SMSC took
them; the outbox worker (workers/outbox.py) sends what a stopped gateway left.

The client is built outside and handed in (as aiosmtpd's Controller builds its server):
`Gateway(app, SmppClient.from_settings(settings), message_log)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Sequence
from typing import Any

from smsgw.app import App
from smsgw.core.clock import now
from smsgw.core.text import any_number_to_canonical
from smsgw.messages import Inbound, Outbound
from smsgw.observability import metrics
from smsgw.observability.logs import get_logger
from smsgw.store import StoreUnavailable
from smsgw.transport.heartbeat import RecentTraffic, beating
from smsgw.transport.msglog import MessageLog, MessageRecorder
from smsgw.transport.ordering import KeyedOrder, SharedOrder
from smsgw.transport.outbox import Held, Outbox
from smsgw.transport.reassembly import PART_STATUSES, Reassembly
from smsgw.transport.receipts import DeliveryEvents, receipt_tag, record_receipt
from smsgw.transport.redelivery import CONFIRM_BATCH_SECONDS, Redeliveries
from smsgw.transport.smpp.client import (
    NotMine,
    OnAnswerSafe,
    Receipt,
    SmppClient,
    WireMessage,
)
from smsgw.transport.smpp.pdu import ESME_ROK, ESME_RX_T_APPN
from smsgw.workers.outbox import OutboxWorker

log = get_logger("smsgw.transport.gateway")
MAX_PROCESSING = 256
STORE_DOWN_LOG_SECONDS = 5.0
Answer = tuple[int, OnAnswerSafe | None]


class Gateway:
    def __init__(self, app: App, client: SmppClient,
                 message_log: MessageLog | None = None) -> None:
        self.app = app
        self.client = client
        cfg = app.settings.smsc
        self.recent = RecentTraffic()  # the last messages, for the heartbeat (console)
        self._recorder = MessageRecorder(message_log, app.router.log_view, app.hasher,
                                         self.recent)
        self._order = SharedOrder(app.store) if cfg.order_across_binds else KeyedOrder()
        self._parts = Reassembly(app.store, app.hasher, cfg.redelivery_window_seconds)
        self._redeliveries = Redeliveries(app.store, app.hasher, cfg.redelivery_window_seconds,
                                          cfg.response_timer_seconds)
        # Messages in processing at once: beyond this they wait (cheaply, unanswered), so
        # an SMSC with a huge window cannot drown the event loop and the store pool.
        self._processing = asyncio.Semaphore(MAX_PROCESSING)
        self._reply_tasks: set[asyncio.Future[list[str]]] = set()
        self.outbox = Outbox(app.store, app.hasher, app.settings,
                             render=app.router.replies_for)
        # short codes whose command scripts hold their replies (one server only)
        self._held_by_command = frozenset(
            code for code in app.router.short_codes
            if app.router.holds_replies(code) and not app.store.single_slot)
        self._holding: set[asyncio.Future[Any]] = set()  # HTTP OTPs being kept, then sent
        # replies decided in this loop turn, submitted once its deliver_sm answers are out
        self._unsent: list[tuple[Inbound | None, list[Held]]] = []
        self._store_down_logged = float("-inf")
        self._store_down_count = 0
        self._short_codes = app.router.short_codes
        self._delivery_events = DeliveryEvents(app.otp.events)  # for the webhooks

    async def run(self) -> None:
        await self.app.store.load_scripts()
        worker = OutboxWorker(self.outbox, functools.partial(self._send, None))
        with contextlib.suppress(StoreUnavailable):
            await self.outbox.renew()  # before any reply is held under this gateway's id
        flushing = asyncio.create_task(self._flush_loop())
        keeping = asyncio.create_task(worker.run())
        try:
            async with beating(self):
                await self.client.run(self)
        finally:
            flushing.cancel()
            keeping.cancel()
            await self.flush()
            await self.outbox.release()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        # replies decided but not yet handed to the client (an HTTP OTP whose 202 was just
        # written, a wave submitted in the next loop turn): the client's drain counts only
        # what it was given, and would unbind before them (found by the outside attack)
        if self._holding:
            await asyncio.wait(set(self._holding), timeout=drain_timeout)
        await self.client.stop(drain_timeout)
        if self._reply_tasks:
            log.info("waiting for replies", replies=len(self._reply_tasks))
            await asyncio.wait(set(self._reply_tasks), timeout=drain_timeout)

    async def settle(self) -> None:
        """Wait until every reply decided so far was accepted by the SMSC (or refused),
        and the message log holds them all."""
        while self._reply_tasks or self._holding:
            await asyncio.wait(self._reply_tasks | self._holding)
        await self._delivery_events.drain()
        self._recorder.flush()

    async def health(self) -> dict[str, object]:
        return {"store": await self.app.store.ping(), "smsc_bound": self.client.bound}

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(CONFIRM_BATCH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        """Confirm the answers found safe so far; write out the message log."""
        await self._redeliveries.confirm()
        await self.outbox.flush()
        self._recorder.flush()

    # -- inbound ------------------------------------------------------------------------

    async def on_message(self, message: WireMessage, session: str) -> Answer:
        # Overload is shed by the transport before a task exists (smpp/client.py); here
        # only the number of messages in processing at once is bounded.
        received = time.perf_counter()
        async with self._processing:
            return await self._process(message, session, received)

    async def _process(self, message: WireMessage, session: str, received: float) -> Answer:
        sender = any_number_to_canonical(message.source)
        service = self._service_label(message.destination)
        try:
            assembly = await self._parts.add(message, sender, session)
        except StoreUnavailable:
            return ESME_RX_T_APPN, None
        if assembly.state != "whole":
            # a part kept until the rest arrives (ROK), or one refused for good
            status = PART_STATUSES[assembly.state]
            if status != ESME_ROK:
                metrics.message_in(service, "part_refused").inc()
            return status, None
        slot = (self.outbox.slot(sender) if message.destination in self._held_by_command
                else None)
        shown = None
        try:
            async with self._order.hold(sender):
                inbound = self._redeliveries.inbound(message, sender, assembly.text,
                                                     assembly.message_id, session, now(),
                                                     hold=slot)
                if slot is not None:
                    shown = self._recorder.shown(inbound)  # the log's text, made once
                    self.outbox.prepare(slot, inbound, shown)
                held, late = await self._route(inbound, received)
        except StoreUnavailable as exc:
            metrics.message_in(service, "store_down").inc()
            self._store_down_warning(str(exc))
            return ESME_RX_T_APPN, None
        await self._parts.forget(message, sender)
        self._recorder.inbound(inbound, shown)
        metrics.observe_replies(service, [each.reply for each in held],
                                time.perf_counter() - received)
        self._send_after_answers(inbound, held)
        return ESME_ROK, None if late else self._redeliveries.on_answer_safe(inbound)

    async def _route(self, inbound: Inbound, received: float) -> tuple[list[Held], bool]:
        """The replies, durable in the outbox, and whether they come too late (the SMSC
        may deliver again). A store failure in either step: the message is answered with a
        temporary error, and its redelivery gets the same outcome, applied once."""
        try:
            replies = await self.app.router.handle(inbound)
            held = await self.outbox.hold(inbound, replies)
        except StoreUnavailable:
            self._redeliveries.remember_uncertain(inbound, "store_failed")
            raise
        finally:
            self.outbox.slot_done(inbound.hold)  # its row no longer being written
        late = self._redeliveries.answered_late(received)
        if late:
            self._redeliveries.remember_uncertain(inbound, "late_answer")
        return held, late

    def _service_label(self, short_code: str) -> str:
        """A metric label: a configured short code, else "other" (never what a sender
        chose)."""
        return short_code if short_code in self._short_codes else "other"

    def _store_down_warning(self, error: str) -> None:
        """One warning per few seconds of an outage, not one per message."""
        self._store_down_count += 1
        if time.monotonic() - self._store_down_logged >= STORE_DOWN_LOG_SECONDS:
            log.warning("store unavailable: asking the SMSC to deliver again",
                        error=error, messages=self._store_down_count)
            self._store_down_logged = time.monotonic()
            self._store_down_count = 0

    async def on_receipt(self, receipt: Receipt) -> None:
        await record_receipt(self.app.store, receipt, self._delivery_events)

    # -- outbound -----------------------------------------------------------------------

    async def deliver(self, messages: list[Outbound], decoys: Sequence[Outbound] = ()) -> None:
        """Send messages that answer no inbound SMS (OTPs the payment system asked for),
        through the outbox: once this returns they are durable, so the HTTP API answers
        202 only then. With the store down they are sent anyway (kept in memory only).
        `decoys` (what a card that gets no SMS would have got) cost the same, on a decoy
        row of the outbox, and are sent to no one."""
        keeping = asyncio.ensure_future(self._keep(messages, list(decoys)))
        self._track(keeping)
        try:
            held = await asyncio.shield(keeping)  # a caller that gives up stops nothing
        except asyncio.CancelledError:
            keeping.add_done_callback(self._send_kept)
            raise
        # submitted once the caller's step is over: the HTTP API writes its 202 in that
        # step, so a card that gets an SMS does no more work before its answer than one
        # that gets none (encoding and writing the submit_sm come after the answer)
        self._send_after_answers(None, held)

    def _send_after_answers(self, inbound: Inbound | None, held: list[Held]) -> None:
        """Submitted after the answers of the loop turn that decided them: a wave of
        messages (an SMSC's window) gets its deliver_sm answers, and the SMSC can send the
        next ones, while this process encodes the wave's replies; an HTTP OTP, after its
        202. (They are durable in the outbox already: the order of answer and submit
        changes nothing that is kept.)"""
        if not self._unsent:
            loop = asyncio.get_running_loop()
            sending = loop.create_future()
            self._track(sending)
            loop.call_soon(self._send_unsent, sending)
        self._unsent.append((inbound, held))

    def _send_unsent(self, sending: asyncio.Future[None]) -> None:
        unsent, self._unsent = self._unsent, []
        try:
            self.client.write_queued_now()
            for inbound, held in unsent:
                try:
                    self._send(inbound, held)
                except Exception as exc:  # one message's failure leaves the others' going
                    # no traceback: its frames hold the wave's texts (PINs in clear)
                    log.error("replies not submitted: kept in the outbox, a successor sends "
                              "them (restart the gateway)", error=type(exc).__name__,
                              replies=len(held))
        finally:
            sending.set_result(None)

    def _track(self, work: asyncio.Future[Any]) -> None:
        self._holding.add(work)
        work.add_done_callback(self._holding.discard)

    def _send_kept(self, keeping: asyncio.Future[list[Held]]) -> None:
        if not keeping.cancelled() and keeping.exception() is None:
            self._send(None, keeping.result())

    async def _keep(self, messages: list[Outbound], decoys: list[Outbound]) -> list[Held]:
        if decoys:
            with contextlib.suppress(StoreUnavailable):
                await self.outbox.hold_decoys(decoys)
        if not messages:
            return []
        try:
            return await self.outbox.hold(None, messages)
        except StoreUnavailable:
            log.warning("outbox unavailable: sending without keeping", replies=len(messages))
            return [Held(reply, "", -1, float("inf"), time.time()) for reply in messages]

    def _send(self, inbound: Inbound | None, held: list[Held]) -> None:
        for each in held:
            reply = each.reply
            accepted = self.client.submit_nowait(
                reply.sender, reply.to, reply.text, receipt_tag(reply),
                expires_in=each.expires - time.time(),
                may_send=self.outbox.may_send() if each.shard >= 0 else None,
                on_done=functools.partial(self._submitted, inbound, each))
            self._reply_tasks.add(accepted)

    def _submitted(self, inbound: Inbound | None, held: Held,
                   done: asyncio.Future[list[str]]) -> None:
        self._reply_tasks.discard(done)
        if held.shard >= 0:  # the outbox's part: removal, records
            self.outbox.finished(held, done)
        self._reply_done(inbound, held.reply, done)

    def _reply_done(self, inbound: Inbound | None, reply: Outbound,
                    done: asyncio.Future[list[str]]) -> None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if isinstance(error, NotMine):  # held back: the outbox sends it again if still ours
            return
        if error is not None:  # a refused submit is logged; it must not go unnoticed
            metrics.message_out(reply.kind, "refused").inc()
            log.error("reply refused by the SMSC", kind=reply.kind, error=str(error))
            return
        ids = done.result()
        metrics.message_out(reply.kind, "accepted").inc()
        self._recorder.reply(inbound, reply, ids[0] if ids else "")
        self._delivery_events.accepted(reply, ids[0] if ids else "")
