"""A fake SMSC: a real SMPP 3.4 server on loopback for development, tests and load tests.

It authenticates binds, answers enquire_link, hands injected mobile-originated messages
to bound receivers as deliver_sm (again and again until one is answered ESME_ROK),
accepts submit_sm with message ids, reassembles concatenated parts, sends delivery
receipts, answers a malformed PDU with generic_nack and keeps serving. Faults can be
switched on: drop links, refuse binds, throttle, delay responses, stall (take submit_sm
and never answer).

Like a real SMSC it routes between binds: a client that binds with system_id "loadtest"
plays the phones. Its submit_sm become MOs for the other binds (the gateway), and every
MT the gateway sends is delivered to it as deliver_sm. `smsgw loadtest --smsc` uses this
to drive a fake SMSC running in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiosmpplib.protocol import BindTransceiver
from aiosmpplib.state import MESSAGE_STATE, RECEIPTED_MESSAGE_ID, OptionalParam

from smsgw.core.backoff import Backoff
from smsgw.transport.smpp.builders import deliver_sm_pdu, enquire_link_pdu
from smsgw.transport.smpp.connection import Connection, ConnectionClosed
from smsgw.transport.smpp.fastcodec import MESSAGE_STATES, ShortMessage, decode_short_message
from smsgw.transport.smpp.pdu import (
    BIND_RECEIVER,
    BIND_TRANSCEIVER,
    BIND_TRANSMITTER,
    ESME_RBINDFAIL,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_RINVPASWD,
    ESME_ROK,
    ESME_RTHROTTLED,
    GENERIC_NACK,
    HEADER,
    HEADER_LENGTH,
    SUBMIT_SM,
    PduError,
    RawPdu,
    decode,
    generic_nack,
    message_id_body,
    response_pdu,
)
from smsgw.transport.smpp.sms_text import Part, encode_reply

DRIVER_SYSTEM_ID = "loadtest"  # a bind with this system_id plays the phones (see below)
RECEIVING_BINDS = (BIND_RECEIVER, BIND_TRANSCEIVER)
SENDING_BINDS = (BIND_TRANSMITTER, BIND_TRANSCEIVER)
ESM_DELIVERY_RECEIPT = 0x04
UCS2_MAX_OCTETS = 140
MAX_REDELIVER_SECONDS = 30.0
CODINGS = {0: "gsm0338", 8: "ucs2", 3: "latin_1", 1: "ascii"}
GSM_MAX_SEPTETS = 160


@dataclass
class InjectedMo:
    """A mobile-originated message given to the fake SMSC, and how its delivery went."""

    id: str
    source: str
    destination: str
    text: str
    parts: list[Part]
    tlvs: list[OptionalParam]
    injected_at: float
    attempts: int = 0
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    statuses: list[int] = field(default_factory=list)


@dataclass
class Mt:
    message_ids: list[str]
    source: str
    destination: str
    text: str
    data_coding: str
    parts: int
    registered_delivery: int
    received_at: float


@dataclass
class Faults:
    refuse_binds: int = 0  # refuse this many binds, then accept
    throttle_next: int = 0  # answer this many submit_sm with ESME_RTHROTTLED
    response_delay: float = 0.0  # seconds before answering submit_sm
    ignore_deliver_resp: int = 0  # drop this many deliver_sm_resp (as if lost)
    stall_submits: bool = False  # take submit_sm and never answer (nor deliver them)
    error_next: int = 0  # answer this many submit_sm with `error_status` (not delivered)
    error_status: int = 0x64  # ESME_RX_T_APPN, a temporary error


@dataclass
class _Session:
    conn: Connection
    bind: int
    system_id: str


class FakeSmsc:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, system_id: str | None = None,
                 password: str | None = None, redeliver_after: float = 1.0,
                 response_timeout: float = 5.0, receipt_delay: float = 0.0,
                 deliver_window: int = 1000, keep_history: bool = True) -> None:
        # keep_history=False: answered MOs and received MTs are not kept (long runs);
        # `on_mt` callbacks still see every MT.
        self.keep_history = keep_history
        self.host, self.port = host, port
        self._system_id, self._password = system_id, password
        self.redeliver_after = redeliver_after
        self.response_timeout = response_timeout
        self.receipt_delay = receipt_delay
        # what receipts report (a stat: of the text), and how: in the text and the TLVs,
        # or in the TLVs only (receipted_message_id and message_state)
        self.receipt_state = "DELIVRD"
        self.receipt_in_text = True
        self.faults = Faults()
        self.mo: dict[str, InjectedMo] = {}
        self.mt: list[Mt] = []
        self.violations: list[str] = []
        self.stats = {"binds": 0, "binds_refused": 0, "generic_nacks": 0, "deliver_attempts": 0,
                      "throttled": 0, "receipts": 0, "max_outstanding_submits": 0,
                      "stalled": 0, "errored": 0}
        self._outstanding_submits = 0
        self.on_mt: list[Callable[[Mt], None]] = []
        self._sessions: list[_Session] = []
        self._server: asyncio.Server | None = None
        self._mo_ids = itertools.count(1)
        self._mt_ids = itertools.count(1)
        self._pending: asyncio.Queue[InjectedMo] = asyncio.Queue()
        self._deliver_slots = asyncio.Semaphore(deliver_window)
        self._partial: dict[tuple[str, str, int, int], dict[int, tuple[str, str, int]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._receiver_ready = asyncio.Event()
        self._mt_event = asyncio.Event()
        self._turn = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> FakeSmsc:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._dispatch())
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.conn.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> FakeSmsc:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- what tests and people use ------------------------------------------------------

    def inject_mo(self, source: str, destination: str, text: str, *,
                  parts: list[Part] | None = None,
                  tlvs: list[OptionalParam] | None = None) -> InjectedMo:
        """Queue a mobile-originated message; it is delivered until answered ESME_ROK."""
        mo = InjectedMo(f"mo-{next(self._mo_ids)}", source, destination, text,
                parts or encode_reply(text), tlvs or [], time.monotonic())
        self.mo[mo.id] = mo
        self._pending.put_nowait(mo)
        return mo

    async def wait_bound(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._receiver_ready.wait(), timeout)

    async def wait_mt(self, count: int, timeout: float = 10.0) -> list[Mt]:
        """Wait until at least `count` MT messages were received in all."""
        deadline = time.monotonic() + timeout
        while len(self.mt) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.mt)} MT received, expected {count}")
            self._mt_event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._mt_event.wait(), remaining)
        return self.mt

    async def wait_answered(self, mo: InjectedMo, timeout: float = 10.0) -> None:
        await asyncio.wait_for(mo.answered.wait(), timeout)

    def drop_links(self) -> None:
        for session in list(self._sessions):
            session.conn.close()

    async def request_raw(self, command_id: int, body: bytes,
                          timeout: float = 5.0) -> RawPdu:
        """Send one request of any command id and body, as is (a hostile SMSC: nothing is
        checked), to the gateway's receiving bind; its response (TimeoutError if none)."""
        session = await self._receiver()
        return await session.conn.request(
            lambda seq: HEADER.pack(HEADER_LENGTH + len(body), command_id, 0, seq) + body,
            timeout)

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes to every bound client (for garbage tests)."""
        for session in self._sessions:
            with contextlib.suppress(ConnectionClosed):
                session.conn.write(data)

    async def enquire_links(self, timeout: float = 5.0) -> int:
        """Send enquire_link to every bound client; how many answered ESME_ROK."""
        answered = 0
        for session in list(self._sessions):
            with contextlib.suppress(ConnectionClosed, asyncio.TimeoutError):
                response = await session.conn.request(enquire_link_pdu, timeout)
                answered += response.status == ESME_ROK
        return answered

    @property
    def bound_sessions(self) -> int:
        return len(self._sessions)

    # -- sessions -----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holder: dict[str, _Session] = {}
        conn: Connection | None = None

        def on_request(raw: RawPdu) -> None:
            assert conn is not None
            self._on_request(conn, holder, raw)

        conn = Connection(writer, on_request)
        try:
            await conn.read_loop(reader)
        finally:
            session = holder.get("session")
            if session in self._sessions:
                self._sessions.remove(session)
            if not any(s.bind in RECEIVING_BINDS for s in self._sessions):
                self._receiver_ready.clear()

    def _on_request(self, conn: Connection, holder: dict[str, _Session], raw: RawPdu) -> None:
        try:
            if raw.command_id in (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER):
                self._on_bind(conn, holder, raw)
            elif conn.answer_session_request(raw):
                pass
            elif raw.command_id == SUBMIT_SM:
                self._on_submit(conn, holder.get("session"), raw)
            elif raw.command_id == GENERIC_NACK:
                pass
            else:
                self.stats["generic_nacks"] += 1
                conn.write(generic_nack(ESME_RINVCMDID, raw.sequence))
        except ConnectionClosed:
            pass

    def _on_bind(self, conn: Connection, holder: dict[str, _Session], raw: RawPdu) -> None:
        try:
            bind = decode(raw)
        except PduError as exc:
            self.stats["generic_nacks"] += 1
            conn.write(generic_nack(exc.status, raw.sequence))
            return
        assert isinstance(bind, BindTransceiver)
        status = self._bind_status(bind)
        body = message_id_body("fakesmsc")
        conn.write(response_pdu(raw.command_id, status, raw.sequence, body))
        if status != ESME_ROK:
            self.stats["binds_refused"] += 1
            return
        session = _Session(conn, raw.command_id, bind.system_id)
        holder["session"] = session
        self._sessions.append(session)
        self.stats["binds"] += 1
        if raw.command_id in RECEIVING_BINDS and bind.system_id != DRIVER_SYSTEM_ID:
            self._receiver_ready.set()

    def _bind_status(self, bind: BindTransceiver) -> int:
        if self.faults.refuse_binds > 0:
            self.faults.refuse_binds -= 1
            return ESME_RBINDFAIL
        if self._system_id is not None and bind.system_id != self._system_id:
            return ESME_RBINDFAIL
        if self._password is not None and bind.password != self._password:
            return ESME_RINVPASWD
        return ESME_ROK

    # -- MT: submit_sm ------------------------------------------------------------------

    def _on_submit(self, conn: Connection, session: _Session | None, raw: RawPdu) -> None:
        if session is None or session.bind not in SENDING_BINDS:
            conn.write(response_pdu(SUBMIT_SM, ESME_RINVBNDSTS, raw.sequence, b"\x00"))
            return
        if session.system_id == DRIVER_SYSTEM_ID:
            self._from_driver(conn, raw)
            return
        try:
            submit = decode_short_message(raw)
        except PduError as exc:
            self.stats["generic_nacks"] += 1
            conn.write(generic_nack(exc.status, raw.sequence))
            return
        if self.faults.stall_submits:
            self.stats["stalled"] += 1
            return
        if self.faults.error_next > 0:
            self.faults.error_next -= 1
            self.stats["errored"] += 1
            conn.write(response_pdu(SUBMIT_SM, self.faults.error_status, raw.sequence, b"\x00"))
            return
        if self.faults.throttle_next > 0:
            self.faults.throttle_next -= 1
            self.stats["throttled"] += 1
            conn.write(response_pdu(SUBMIT_SM, ESME_RTHROTTLED, raw.sequence, b"\x00"))
            return
        message_id = f"{next(self._mt_ids):08x}"
        self._check_size(raw)
        if self.faults.response_delay:
            self._spawn(self._answer_later(conn, raw.sequence, message_id))
        else:
            conn.write(response_pdu(SUBMIT_SM, ESME_ROK, raw.sequence,
                                    message_id_body(message_id)))
        self._collect(submit, message_id)
        if submit.registered_delivery & 1:
            self._spawn(self._send_receipt(submit, message_id))

    def _from_driver(self, conn: Connection, raw: RawPdu) -> None:
        """A phone's message from the driver bind: an MO for the gateway."""
        try:
            sent = decode_short_message(raw)
        except PduError as exc:
            conn.write(generic_nack(exc.status, raw.sequence))
            return
        mo = self.inject_mo(sent.source, sent.destination, sent.text)
        conn.write(response_pdu(SUBMIT_SM, ESME_ROK, raw.sequence, message_id_body(mo.id)))

    def _to_drivers(self, mt: Mt) -> None:
        drivers = [s for s in self._sessions if s.system_id == DRIVER_SYSTEM_ID
                   and s.bind in RECEIVING_BINDS and not s.conn.closed.is_set()]
        if drivers:
            delivery = _Delivery(mt.source, mt.destination, encode_reply(mt.text), [], 0)
            self._spawn(self._deliver_to(drivers[0], delivery))

    async def _deliver_to(self, session: _Session, delivery: _Delivery) -> None:
        for index in range(len(delivery.parts)):
            await self._deliver_part(session, delivery, index)

    async def _answer_later(self, conn: Connection, sequence: int, message_id: str) -> None:
        self._outstanding_submits += 1
        self.stats["max_outstanding_submits"] = max(self.stats["max_outstanding_submits"],
                                                    self._outstanding_submits)
        try:
            await asyncio.sleep(self.faults.response_delay)
            with contextlib.suppress(ConnectionClosed):
                conn.write(response_pdu(SUBMIT_SM, ESME_ROK, sequence,
                                        message_id_body(message_id)))
        finally:
            self._outstanding_submits -= 1

    def _check_size(self, raw: RawPdu) -> None:
        """The short_message octets (UDH included) must fit one SMS on the air."""
        body = raw.data
        index = body.index(b"\x00", 16) + 3  # after service_type: source TON, NPI, address
        index = body.index(b"\x00", index) + 3
        index = body.index(b"\x00", index) + 4  # esm_class .. priority_flag
        index = body.index(b"\x00", index) + 1
        index = body.index(b"\x00", index) + 1
        data_coding, length = body[index + 2], body[index + 4]
        if data_coding == 8 and length > UCS2_MAX_OCTETS:
            self.violations.append(f"UCS2 part of {length} octets")
        if data_coding == 0 and length > GSM_MAX_SEPTETS:
            self.violations.append(f"GSM part of {length} septets")

    def _collect(self, submit: ShortMessage, message_id: str) -> None:
        text = submit.text
        source, destination = submit.source, submit.destination
        coding = CODINGS.get(submit.data_coding, str(submit.data_coding))
        if submit.segment is not None and submit.segment[2] > 1:
            reference, number, total = submit.segment
            key = (source, destination, reference, total)
            parts = self._partial.setdefault(key, {})
            parts[number] = (text, message_id, submit.registered_delivery)
            if len(parts) < total:
                return
            del self._partial[key]
            ordered = [parts[n] for n in sorted(parts)]
            self._record(Mt([p[1] for p in ordered], source, destination,
                            "".join(p[0] for p in ordered), coding, total,
                            ordered[0][2], time.monotonic()))
            return
        self._record(Mt([message_id], source, destination, text, coding, 1,
                        submit.registered_delivery, time.monotonic()))

    def _record(self, mt: Mt) -> None:
        if self.keep_history:
            self.mt.append(mt)
        self._mt_event.set()
        for callback in self.on_mt:
            callback(mt)
        self._to_drivers(mt)

    async def _send_receipt(self, submit: ShortMessage, message_id: str) -> None:
        await asyncio.sleep(self.receipt_delay)
        stamp = time.strftime("%y%m%d%H%M")
        state = self.receipt_state
        text = (f"id:{message_id} sub:001 dlvrd:001 submit date:{stamp} done date:{stamp} "
                f"stat:{state} err:000 Text:") if self.receipt_in_text else ""
        part = Part("gsm0338", text.encode("ascii"), 0)
        tlvs = [OptionalParam(RECEIPTED_MESSAGE_ID, message_id)]
        if not self.receipt_in_text:
            code = next(c for c, name in MESSAGE_STATES.items() if name == state)
            tlvs.append(OptionalParam(MESSAGE_STATE, code))
        receipt = _Delivery(submit.destination, submit.source, [part], tlvs,
                            ESM_DELIVERY_RECEIPT)
        self.stats["receipts"] += 1
        await self._deliver_until_answered(receipt)

    # -- MO: deliver_sm -----------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            mo = await self._pending.get()
            await self._deliver_slots.acquire()
            task = self._spawn(self._deliver_mo(mo))
            task.add_done_callback(lambda _t: self._deliver_slots.release())

    async def _deliver_mo(self, mo: InjectedMo) -> None:
        delivery = _Delivery(mo.source, mo.destination, mo.parts, mo.tlvs, 0, mo)
        await self._deliver_until_answered(delivery)
        mo.answered.set()
        if not self.keep_history:
            self.mo.pop(mo.id, None)

    async def _deliver_until_answered(self, delivery: _Delivery) -> None:
        """Deliver until answered ESME_ROK, backing off as real SMSCs do (doubling from
        `redeliver_after`, at most 30 s), so a struggling gateway is not flooded."""
        pending = list(range(len(delivery.parts)))
        backoff = Backoff(self.redeliver_after, max(self.redeliver_after, MAX_REDELIVER_SECONDS))
        while pending:
            session = await self._receiver()
            still = []
            for index in pending:
                if not await self._deliver_part(session, delivery, index):
                    still.append(index)
            pending = still
            if pending:
                await asyncio.sleep(backoff.next_delay())

    async def _receiver(self) -> _Session:
        """The next receiving bind, in turn (round robin, as SMSCs spread an ESME's
        traffic over its binds: one subscriber's messages may reach several gateways)."""
        while True:
            receivers = [s for s in self._sessions
                         if s.bind in RECEIVING_BINDS and not s.conn.closed.is_set()
                         and s.system_id != DRIVER_SYSTEM_ID]
            if receivers:
                self._turn = (self._turn + 1) % len(receivers)
                return receivers[self._turn]
            self._receiver_ready.clear()
            await self._receiver_ready.wait()

    async def _deliver_part(self, session: _Session, delivery: _Delivery, index: int) -> bool:
        part = delivery.parts[index]
        self.stats["deliver_attempts"] += 1
        if delivery.mo is not None:
            delivery.mo.attempts += 1
        try:
            response = await session.conn.request(
                lambda seq: deliver_sm_pdu(seq, delivery.source, delivery.destination, part,
                                           delivery.esm_class, delivery.tlvs),
                timeout=self.response_timeout)
        except (TimeoutError, ConnectionClosed):
            return False
        if self.faults.ignore_deliver_resp > 0:
            self.faults.ignore_deliver_resp -= 1
            session.conn.close()  # as if the answer was lost with the link
            return False
        if delivery.mo is not None:
            delivery.mo.statuses.append(response.status)
        return response.status == ESME_ROK


@dataclass
class _Delivery:
    source: str
    destination: str
    parts: list[Part]
    tlvs: list[OptionalParam]
    esm_class: int
    mo: InjectedMo | None = None
