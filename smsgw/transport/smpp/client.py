"""The ESME: our side of the SMPP link to the operator's SMSC.

Our own session loop on aiosmpplib's PDU codec (see notes/aiosmpplib.md), because its
ESME cannot do what a gateway that moves money must:
- a `deliver_sm` is answered only when the handler has finished with it (the message is
  applied, so durable), and with the status the handler chooses: ESME_RX_T_APPN while
  the store is down, so the SMSC delivers again later;
- reception never waits for processing: each message is handled in its own task and
  answered out of order, as SMPP allows;
- a handler exception, a vendor status or a garbled PDU never kills the session;
- submits run in a window, at a rate, and back off on ESME_RTHROTTLED / ESME_RMSGQFUL;
  a part not accepted before the link drops is sent again after the reconnect;
- no correlator: each submit awaits its own response future, so nothing accumulates.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from smsgw.config import Settings, SmscSettings
from smsgw.core.backoff import Backoff
from smsgw.core.records import record
from smsgw.observability.logs import get_logger
from smsgw.transport.smpp.builders import bind_pdu, enquire_link_pdu, fast_submit_sm_pdu, unbind_pdu
from smsgw.transport.smpp.connection import Connection, ConnectionClosed, SmppProtocol
from smsgw.transport.smpp.fastcodec import ShortMessage, decode_short_message
from smsgw.transport.smpp.pdu import (
    BIND_RECEIVER,
    BIND_TRANSCEIVER,
    BIND_TRANSMITTER,
    DELIVER_SM,
    ESME_RINVCMDID,
    ESME_RMSGQFUL,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    ESME_RX_T_APPN,
    PduError,
    RawPdu,
    generic_nack,
    response_pdu,
)
from smsgw.transport.smpp.sms_text import Part, encode_reply

log = get_logger("smsgw.transport.smpp")

RESPONSE_TIMEOUT = 10.0
MAX_INBOUND_TASKS = 2500
MAX_PENDING_PARTS = 3000
ANSWER_SAFE_AFTER_SECONDS = 1.0
# how often answers are looked at for being safe: often, so that their confirmations
# (one store call each flush) stay small; every half second, a call dropped a thousand
# candidates at 2,000/s and held Redis, and every transfer behind it, for up to 17 ms
ANSWER_WATCH_SECONDS = 0.05
MIN_SLEEP_SECONDS = 0.001
RECONNECT_FIRST_SECONDS = 1.0
LASTING_SESSION_SECONDS = 30.0  # after a session this long, reconnects start fast again
# submit_sm_resp statuses that say "not now", not "never": the part is sent again after a
# pause. Any other status refuses the reply for good. ESME_RX_T_APPN is the SMSC's own
# "temporary application error" and ESME_RSYSERR its passing failure: taken as refusals
# for good, they dropped confirmations of applied transfers (found by the outside outbox
# attack).
BUSY_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
TEMPORARY_STATUSES = BUSY_STATUSES | {ESME_RX_T_APPN, ESME_RSYSERR}
BIND_COMMANDS = {"transceiver": BIND_TRANSCEIVER, "receiver": BIND_RECEIVER,
                 "transmitter": BIND_TRANSMITTER}


@record
class WireMessage:
    """A deliver_sm's mobile-originated message as the session hands it up: a whole
    message or one part of a concatenated one (the gateway makes an Inbound of it)."""

    source: str
    destination: str
    text: str
    smsc_id: str | None
    part: tuple[int, int, int] | None  # (reference, number, total) of a concatenated part


@record
class Receipt:
    message_id: str
    state: str  # DELIVRD, UNDELIV, EXPIRED, ...
    error: str
    tag: str | None  # what the submitter attached to the reply (e.g. its recipient)


class BoundedMap(OrderedDict[str, str]):
    """A dict that forgets its oldest entries past `limit` (receipts that never come)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


RECEIPT_MEMORY = 100_000


# Called once a deliver_sm_resp is safe: written, and the link stayed up a moment after
# it (ANSWER_SAFE_AFTER_SECONDS), so the SMSC surely read it and will not deliver again.
OnAnswerSafe = Callable[[], None]


class Handler(Protocol):
    async def on_message(self, message: WireMessage,
                         session: str) -> tuple[int, OnAnswerSafe | None]:
        """Return the deliver_sm_resp status, and what to do once the answer is safe."""

    async def on_receipt(self, receipt: Receipt) -> None: ...


@dataclass
class _Submission:
    """One reply: done when every part was accepted (message ids in part order)."""

    done: asyncio.Future[list[str]]
    ids: list[str]
    remaining: int
    # called as soon as `done` is settled (not a turn of the loop later, as a future's
    # done-callbacks are); set once every part was handed on (see submit_nowait)
    on_done: Callable[[asyncio.Future[list[str]]], None] | None = None

    def part_accepted(self, index: int, message_id: str) -> None:
        self.ids[index] = message_id
        self.remaining -= 1
        if self.remaining == 0 and not self.done.done():
            self.done.set_result(self.ids)
            self._settled()

    def failed(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
            self._settled()

    def _settled(self) -> None:
        if self.on_done is not None:
            try:
                self.on_done(self.done)
            except Exception:  # the SMSC's answer was handled; the link goes on
                log.exception("a reply's completion could not be handled")


@dataclass
class _PartJob:
    source: str
    destination: str
    part: Part
    registered_delivery: int
    submission: _Submission
    index: int
    receipt_tag: str | None = None
    attempts: int = 0
    deadline: float | None = None  # monotonic: not sent after this (ReplyExpired)
    may_send: Callable[[], bool] | None = None  # asked before each attempt (NotMine)


@dataclass
class _Session:
    id: str
    handler: Handler
    connections: list[Connection]
    receiver: Connection | None
    transmitter: Connection | None
    answered: deque[tuple[float, OnAnswerSafe]] = field(default_factory=deque)


class TokenBucket:
    """At most `rate` per second, in bursts of at most one tenth of a second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = max(rate, 1.0)
        self.capacity = max(self.rate / 10, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    async def take(self) -> None:
        while not self.try_take():
            # at least a millisecond: the event loop's timers are no finer, and a shorter
            # sleep wakes at once, spinning the CPU that the gateway needs
            await asyncio.sleep(max((1 - self.tokens) / self.rate, MIN_SLEEP_SECONDS))

    def try_take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Window:
    """At most `size` submits awaiting their response (a semaphore with a no-wait take)."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._freed = asyncio.Event()

    def take_nowait(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        while not self.take_nowait():
            self._freed.clear()
            await self._freed.wait()

    def release(self) -> None:
        self.free += 1
        self._freed.set()


class SmppClient:
    """Built by whoever runs it (commands, tests, bench) and handed to its handler, as
    aiosmtpd's Controller builds the server: `run(handler)` serves that handler."""

    def __init__(self, settings: SmscSettings, password: str, smsc_id_tag: int = 0) -> None:
        self._cfg = settings
        self._password = password
        self._smsc_id_tag = smsc_id_tag
        self._queue: asyncio.Queue[_PartJob] = asyncio.Queue()
        self._window = Window(settings.window)
        self._sender_busy = False  # the sender task holds a part, waiting for its turn
        self._bucket = TokenBucket(settings.submit_rate)
        self._throttled_until = 0.0
        self._session: _Session | None = None
        self._bound = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._inbound_tasks: set[asyncio.Task[None]] = set()
        self._in_window = 0
        # set when submit_sm_resp arrives, before any receipt for it can be read
        self._receipt_tags = BoundedMap(RECEIPT_MEMORY)
        self.stats: dict[str, int] = {"binds": 0, "bind_failures": 0, "link_drops": 0,
                                      "throttled": 0, "submit_retries": 0,
                                      "submit_failed": 0, "submit_deferred": 0, "garbled": 0,
                                      "shed": 0}

    @classmethod
    def from_settings(cls, settings: Settings) -> SmppClient:
        """The gateway's client: the [smsc] table, its password, its message id TLV."""
        smsc = settings.smsc
        return cls(smsc, settings.smsc_password, smsc.message_id_tlv)

    # -- public -------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def write_queued_now(self) -> None:
        """Write the PDUs queued so far (the deliver_sm answers of this turn) at once,
        ahead of what is queued next."""
        session = self._session
        if session is not None:
            for conn in session.connections:
                conn.flush()

    async def wait_bound(self, timeout: float) -> None:
        await asyncio.wait_for(self._bound.wait(), timeout)

    async def submit(self, source: str, destination: str, text: str,
                     receipt_tag: str | None = None) -> list[str]:
        """Send a reply (split into parts); the SMSC's message ids once all are accepted.
        With a `receipt_tag`, receipts are requested and handed up with that tag."""
        return await self.submit_nowait(source, destination, text, receipt_tag)

    def submit_nowait(self, source: str, destination: str, text: str,
                      receipt_tag: str | None = None,
                      expires_in: float | None = None,
                      may_send: Callable[[], bool] | None = None,
                      on_done: Callable[[asyncio.Future[list[str]]], None] | None = None,
                      ) -> asyncio.Future[list[str]]:
        """As `submit`, without waiting. With `expires_in` (seconds), a part not sent by
        then is not sent at all: the future fails with ReplyExpired. With `may_send`, a
        part is sent (or sent again) only while it answers true; else the future fails
        with NotMine (the outbox: this gateway's lease may have run out meanwhile).
        `on_done` is called with the future once it is settled, never before this
        returns."""
        parts = encode_reply(text)
        loop = asyncio.get_running_loop()
        submission = _Submission(loop.create_future(), [""] * len(parts), len(parts))
        wanted = int(receipt_tag is not None)
        deadline = None if expires_in is None else time.monotonic() + expires_in
        for index, part in enumerate(parts):
            job = _PartJob(source, destination, part, wanted, submission, index, receipt_tag,
                           deadline=deadline, may_send=may_send)
            if not self._send_at_once(job):
                self._queue.put_nowait(job)
        if on_done is not None:
            if submission.done.done():  # failed at once (expired, not ours)
                loop.call_soon(on_done, submission.done)
            else:
                submission.on_done = on_done
        return submission.done

    def _send_at_once(self, job: _PartJob) -> bool:
        """The common case, without waking the sender task: bound, nothing queued before
        this part, a window slot and a rate token free, not throttled."""
        session = self._session
        conn = session.transmitter if session is not None else None
        if (conn is None or conn.closed.is_set() or self._sender_busy
                or not self._queue.empty() or self._throttled_until > time.monotonic()
                or not self._window.take_nowait()):
            return False
        if not self._bucket.try_take():
            self._window.release()
            return False
        self._send_or_fail(conn, job)
        return True

    @property
    def inbound_in_flight(self) -> int:
        """Inbound messages taken from the SMSC and not yet answered."""
        return len(self._inbound_tasks)

    @property
    def pending_submits(self) -> int:
        return self._queue.qsize() + self._in_window

    async def run(self, handler: Handler) -> None:
        """Bind, serve `handler`, and on any loss reconnect with exponential backoff and
        jitter (from the first delay again after a session that lasted a while)."""
        backoff = self._reconnect_backoff()
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._serve_one_session(handler)
            except (OSError, ConnectionClosed, TimeoutError, BindRefused) as exc:
                self.stats["bind_failures" if isinstance(exc, BindRefused) else "link_drops"] += 1
                log.warning("smsc link lost", error=str(exc) or type(exc).__name__,
                            host=self._cfg.host, port=self._cfg.port)
            if self._stopping:
                break
            if time.monotonic() - started > LASTING_SESSION_SECONDS:
                backoff.reset()
            wait = backoff.next_delay()
            log.info("reconnecting", in_seconds=round(wait, 2))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), wait)

    def _reconnect_backoff(self) -> Backoff:
        """From a second (or [smsc] reconnect_max_seconds if less), doubling up to it."""
        ceiling = max(self._cfg.reconnect_max_seconds, MIN_SLEEP_SECONDS)
        return Backoff(min(RECONNECT_FIRST_SECONDS, ceiling), ceiling, jitter=0.5)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking messages, finish those in flight, send queued replies, unbind."""
        self._stopping = True
        deadline = time.monotonic() + drain_timeout
        log.info("draining", messages_in_flight=len(self._inbound_tasks),
                 replies_queued=self.pending_submits)
        if self._inbound_tasks:
            await asyncio.wait(set(self._inbound_tasks), timeout=drain_timeout)
        while self.pending_submits and time.monotonic() < deadline and self.bound:
            await asyncio.sleep(0.02)
        log.info("unbinding", messages_in_flight=len(self._inbound_tasks),
                 replies_queued=self.pending_submits)
        session = self._session
        if session is not None:
            self._answers_safe(session, force=True)
            await self._unbind(session)
        self._stopped.set()

    # -- one session --------------------------------------------------------------------

    async def _serve_one_session(self, handler: Handler) -> None:
        kinds = (["transceiver"] if self._cfg.bind == "transceiver"
                 else ["receiver", "transmitter"])
        connections: list[Connection] = []
        session = _Session(secrets.token_hex(6), handler, connections, None, None)
        try:
            for kind in kinds:
                conn = await self._open(session)
                connections.append(conn)
                await self._bind(conn, kind)
                if kind in ("transceiver", "receiver"):
                    session.receiver = conn
                if kind in ("transceiver", "transmitter"):
                    session.transmitter = conn
            self._session = session
            self.stats["binds"] += 1
            self._bound.set()
            log.info("bound", session=session.id, mode=self._cfg.bind, host=self._cfg.host,
                     port=self._cfg.port)
            await self._run_session(session)
        finally:
            self._bound.clear()
            self._session = None
            for conn in connections:
                conn.close()

    async def _open(self, session: _Session) -> Connection:
        transport, protocol = await asyncio.wait_for(
            asyncio.get_running_loop().create_connection(SmppProtocol, self._cfg.host,
                                                         self._cfg.port), timeout=10)
        conn: Connection | None = None

        def on_request(raw: RawPdu) -> None:
            assert conn is not None
            self._on_request(conn, session, raw)

        conn = Connection(transport, on_request)
        protocol.attach(conn)
        return conn

    async def _bind(self, conn: Connection, kind: str) -> None:
        cfg = self._cfg
        response = await conn.request(
            lambda seq: bind_pdu(kind, seq, cfg.system_id, self._password, cfg.system_type),
            timeout=RESPONSE_TIMEOUT)
        if response.status != ESME_ROK:
            raise BindRefused(f"bind_{kind} refused with status {response.status:#x}")

    async def _run_session(self, session: _Session) -> None:
        workers = [asyncio.create_task(self._enquire_links(session)),
                   asyncio.create_task(self._watch_answers(session))]
        if session.transmitter is not None:
            workers.append(asyncio.create_task(self._sender(session.transmitter)))
        ends = [asyncio.create_task(conn.closed.wait()) for conn in session.connections]
        ends.append(asyncio.create_task(self._stopped.wait()))
        try:
            done, _ = await asyncio.wait([*ends, *workers], return_when=asyncio.FIRST_COMPLETED)
            for task in done & set(workers):
                if not task.cancelled() and task.exception() is not None:
                    log.error("session worker failed: restarting the session",
                              error=repr(task.exception()))
        finally:
            for task in workers + ends:
                task.cancel()
            await asyncio.gather(*workers, *ends, return_exceptions=True)
        if self._stopping:
            await self._unbind(session)  # a bind that completed while stop() ran
            return
        raise ConnectionClosed("link closed by the SMSC or the network")

    async def _unbind(self, session: _Session) -> None:
        for conn in session.connections:
            if not conn.closed.is_set():
                with contextlib.suppress(ConnectionClosed, asyncio.TimeoutError):
                    await conn.request(unbind_pdu, timeout=2.0)
            conn.close()

    async def _enquire_links(self, session: _Session) -> None:
        while True:
            await asyncio.sleep(self._cfg.enquire_link_seconds)
            for conn in session.connections:
                try:
                    await conn.request(enquire_link_pdu, timeout=RESPONSE_TIMEOUT)
                except (TimeoutError, ConnectionClosed):
                    log.warning("enquire_link unanswered: dropping the link")
                    conn.close()

    # -- inbound ------------------------------------------------------------------------

    def _on_request(self, conn: Connection, session: _Session, raw: RawPdu) -> None:
        try:
            if raw.command_id == DELIVER_SM:
                self._on_deliver_sm(conn, session, raw)
            elif not conn.answer_session_request(raw):
                conn.write(generic_nack(ESME_RINVCMDID, raw.sequence))
        except ConnectionClosed:
            pass

    def _on_deliver_sm(self, conn: Connection, session: _Session, raw: RawPdu) -> None:
        try:
            pdu = decode_short_message(raw)
        except PduError as exc:  # answered with what is wrong; the session goes on
            self.stats["garbled"] += 1
            log.warning("malformed deliver_sm", error=str(exc), status=hex(exc.status))
            conn.write(response_pdu(DELIVER_SM, exc.status, raw.sequence, b"\x00"))
            return
        if (self._stopping or len(self._inbound_tasks) >= MAX_INBOUND_TASKS
                or self.pending_submits >= MAX_PENDING_PARTS):
            # Stopping, or overloaded (too many messages in hand, or too many replies the
            # SMSC has not taken yet): "deliver later", decided before any task exists, so
            # the backlog stays in the SMSC and this process's memory stays bounded.
            self.stats["shed"] += 1
            conn.write(response_pdu(DELIVER_SM, ESME_RX_T_APPN, raw.sequence, b"\x00"))
            return
        if pdu.is_receipt:
            task = asyncio.create_task(self._receipt(conn, session, raw.sequence, pdu))
        else:
            message = self._mo_message(pdu)
            task = asyncio.create_task(self._message(conn, session, raw.sequence, message))
        self._inbound_tasks.add(task)
        task.add_done_callback(self._inbound_tasks.discard)

    def _mo_message(self, pdu: ShortMessage) -> WireMessage:
        part = pdu.segment if pdu.segment is not None and pdu.segment[2] > 1 else None
        smsc_id = None
        if self._smsc_id_tag and self._smsc_id_tag in pdu.tlvs:
            smsc_id = pdu.tlvs[self._smsc_id_tag].rstrip(b"\x00").decode("ascii", "replace")
        return WireMessage(pdu.source, pdu.destination, pdu.text, smsc_id, part)

    async def _message(self, conn: Connection, session: _Session, sequence: int,
                       message: WireMessage) -> None:
        on_safe: OnAnswerSafe | None = None
        try:
            status, on_safe = await session.handler.on_message(message, session.id)
        except Exception:  # never let one message kill the session
            log.exception("message handler failed")
            status = ESME_RX_T_APPN
        try:
            conn.write(response_pdu(DELIVER_SM, status, sequence, b"\x00"))
        except ConnectionClosed:
            return  # unanswered: the SMSC will deliver it again; `on_safe` is not called
        if on_safe is not None:
            session.answered.append((time.monotonic(), on_safe))

    async def _receipt(self, conn: Connection, session: _Session, sequence: int,
                       pdu: ShortMessage) -> None:
        data = pdu.receipt_fields()
        message_id = str(data.get("id", ""))
        receipt = Receipt(message_id, str(data.get("stat", "")), str(data.get("err", "")),
                          self._receipt_tags.pop(message_id, None))
        status = ESME_ROK
        try:
            await session.handler.on_receipt(receipt)
        except Exception:
            log.exception("receipt handler failed")
            status = ESME_RX_T_APPN
        with contextlib.suppress(ConnectionClosed):
            conn.write(response_pdu(DELIVER_SM, status, sequence, b"\x00"))

    async def _watch_answers(self, session: _Session) -> None:
        """An answer counts as delivered once the link stayed up a moment after it."""
        while True:
            await asyncio.sleep(ANSWER_WATCH_SECONDS)
            self._answers_safe(session)

    def _answers_safe(self, session: _Session, force: bool = False) -> None:
        if not force and any(conn.closed.is_set() for conn in session.connections):
            return  # dropped: the session's end is not handled yet, its answers unsure
        limit = time.monotonic() - ANSWER_SAFE_AFTER_SECONDS
        while session.answered and (force or session.answered[0][0] <= limit):
            _, on_safe = session.answered.popleft()
            on_safe()

    # -- outbound -----------------------------------------------------------------------

    async def _sender(self, conn: Connection) -> None:
        while True:
            job = await self._queue.get()
            if conn.closed.is_set():
                self._queue.put_nowait(job)
                return
            self._sender_busy = True
            try:
                await self._wait_turn_to_send(job)
            finally:
                self._sender_busy = False
            self._send_or_fail(conn, job)

    def _send_or_fail(self, conn: Connection, job: _PartJob) -> None:
        if job.deadline is not None and time.monotonic() > job.deadline:
            self._window.release()  # taken for this part, which now goes nowhere
            job.submission.failed(ReplyExpired())
            return
        if job.submission.done.done():  # another part failed it: this one goes nowhere
            self._window.release()
            return
        if job.may_send is not None and not job.may_send():
            self._window.release()
            job.submission.failed(NotMine())
            return
        try:
            self._send_part(conn, job)
        except Exception as exc:  # one bad reply must not stop every later one
            log.exception("cannot send a reply part", destination=job.destination)
            self._in_window -= 1
            self._window.release()
            job.submission.failed(exc)

    async def _wait_turn_to_send(self, job: _PartJob) -> None:
        """A window slot, the end of a throttle pause, a rate token. If the session ends
        meanwhile (this task is cancelled), the job goes back to the queue: never lost."""
        acquired = False
        try:
            await self._window.take()
            acquired = True
            pause = self._throttled_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            await self._bucket.take()
        except asyncio.CancelledError:
            if acquired:
                self._window.release()
            self._queue.put_nowait(job)
            raise

    def _send_part(self, conn: Connection, job: _PartJob) -> None:
        job.attempts += 1
        self._in_window += 1
        try:
            conn.send_request(
                lambda seq: fast_submit_sm_pdu(seq, job.source, job.destination, job.part,
                                          job.registered_delivery),
                lambda result: self._on_submit_resp(job, result), RESPONSE_TIMEOUT)
        except ConnectionClosed as exc:
            self._on_submit_resp(job, exc)

    def _on_submit_resp(self, job: _PartJob, result: RawPdu | Exception) -> None:
        self._in_window -= 1
        self._window.release()
        if isinstance(result, Exception):
            self._retry(job)  # not accepted: send it again on this or the next link
            return
        if result.status == ESME_ROK:
            message_id = _message_id(result)
            if job.receipt_tag is not None:
                self._receipt_tags[message_id] = job.receipt_tag
            job.submission.part_accepted(job.index, message_id)
        elif result.status in TEMPORARY_STATUSES:
            self.stats["throttled" if result.status in BUSY_STATUSES else "submit_deferred"] += 1
            self._throttled_until = time.monotonic() + min(0.25 * 2 ** min(job.attempts, 4), 5)
            self._retry(job)
        else:
            self.stats["submit_failed"] += 1
            log.error("submit_sm refused", status=hex(result.status))
            job.submission.failed(SubmitRefused(result.status))

    def _retry(self, job: _PartJob) -> None:
        self.stats["submit_retries"] += 1
        self._queue.put_nowait(job)


def _message_id(raw: RawPdu) -> str:
    """The message id of a submit_sm_resp body (a C-octet string)."""
    body = raw.data[16:]
    end = body.find(b"\x00")
    return body[: end if end >= 0 else len(body)].decode("ascii", "replace")


class BindRefused(Exception):
    pass


class ReplyExpired(Exception):
    """A reply not sent: its deadline passed before the SMSC could take it."""


class NotMine(Exception):
    """A reply not sent (now): its submitter's `may_send` said no."""


class SubmitRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"submit_sm refused with status {status:#x}")
        self.status = status
