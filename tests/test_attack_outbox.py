"""The outside attack on the outbox (interfaces.md, "Replies that must not be lost"): no
confirmation lost, nothing applied twice, whatever the SMSC, a kill -9 or a second
gateway does. Each test is a break that was found (or a promise that held under a
hostile case worth keeping); real `smsgw run` processes where a kill is involved.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import App, build_app
from smsgw.core.clock import now
from smsgw.messages import Inbound, Outbound
from smsgw.store.keys import subscriber_key
from smsgw.store.outbox import OutboxStore
from smsgw.transport.outbox import Held, Outbox
from smsgw.transport.redelivery import Redeliveries
from smsgw.transport.smpp.client import NotMine, WireMessage
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from smsgw.transport.smpp.pdu import ESME_RSYSERR, ESME_RX_T_APPN
from smsgw.workers.outbox import OutboxWorker
from tests.attacks import tried
from tests.conftest import add_subscribers, make_settings
from tests.test_faults import RECIPIENT, spawn_gateway
from tests.test_outbox_faults import acknowledged_while_stalled, kill, stop
from tests.test_smpp_gateway import ALI, SARA, start_rig, stop_rig

PIN_CHANGED = "Your credit transfer PIN has been changed."


def wire(text: str) -> WireMessage:
    return WireMessage(ALI, "1112", text, None, None)


async def census(app: App) -> int:
    return (await OutboxStore(app.store).census())[0]


# -- two messages, one reply text ----------------------------------------------------------

async def test_two_messages_with_the_same_reply_text_are_two_replies(store_url: str) -> None:
    """Two PIN changes in a row both get "your PIN has been changed": the outbox kept
    them as one entry (the reply id was a digest of the reply alone), so the first one's
    removal also removed the second, unsent: a crash then lost that confirmation."""
    app = build_app(make_settings(store_url))
    outbox = Outbox(app.store, app.hasher, app.settings)
    await outbox.renew()
    memory = Redeliveries(app.store, app.hasher, 600, 5.0)
    reply = Outbound(ALI, "1112", PIN_CHANGED, "transfer.pin_changed")
    first_in = memory.inbound(wire("PIN:55555:22222:22222"), ALI, "PIN:55555:22222:22222",
                              "", "s1", now())
    second_in = memory.inbound(wire("PIN:22222:33333:33333"), ALI, "PIN:22222:33333:33333",
                               "", "s1", now())
    (first,) = await outbox.hold(first_in, [reply])
    (second,) = await outbox.hold(second_in, [reply])
    assert await census(app) == 2
    # the SMSC takes the first; the second is still in flight when the gateway dies
    done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    done.set_result(["m1"])
    outbox.finished(first, done)
    await outbox.flush()
    await outbox.end_lease()
    sent: list[Held] = []
    assert await OutboxWorker(Outbox(app.store, app.hasher, app.settings), sent.extend).once() == 1
    assert [h.reply.text for h in sent] == [PIN_CHANGED]
    assert sent[0].reply_id == second.reply_id
    await app.close()


async def test_a_retried_message_is_still_one_entry(store_url: str) -> None:
    """The other side of that fix: the same message delivered again after an uncertain
    answer on this session re-renders the same reply, which stays one entry: the
    successor sends it once. A delivery on another session (after a link drop) is an
    entry of its own, as a held row is: a session cannot tell it from a second identical
    text, and a shared entry lost one of two messages' replies (our choice: after a
    crash a redelivery's reply may go twice; never none)."""
    app = build_app(make_settings(store_url))
    outbox = Outbox(app.store, app.hasher, app.settings)
    memory = Redeliveries(app.store, app.hasher, 600, 5.0)
    text = "09351234567:1000:55555"
    reply = Outbound(ALI, "1112", "Sent 1000 rials. Ref R1", "transfer.sent")
    original = memory.inbound(wire(text), ALI, text, "", "s1", now())
    await outbox.hold(original, [reply])
    memory.remember_uncertain(original, "late_answer")
    retried = memory.inbound(wire(text), ALI, text, "", "s1", now())
    assert retried.redelivery is not None and retried.redelivery.retry
    await outbox.hold(retried, [reply])
    assert await census(app) == 1
    elsewhere = Redeliveries(app.store, app.hasher, 600, 5.0).inbound(
        wire(text), ALI, text, "", "s2", now())
    await outbox.hold(elsewhere, [reply])
    assert await census(app) == 2
    await app.close()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(st.tuples(st.sampled_from(["s1", "s2", "s3"]), st.booleans()),
                           min_size=1, max_size=6))
async def test_no_delivery_of_one_text_loses_its_entry(
        store_url: str, deliveries: list[tuple[str, bool]]) -> None:
    """Generated: one sender's identical text delivered again and again, on one session
    or others, some after an uncertain answer (a retry), replies held by a call of their
    own (as on a cluster), none sent when the gateway dies. Its successor sends an entry
    for every attempt (a repeat or a redelivery on another session: its own entry; a
    retry: the same one), so no delivery's reply is lost."""
    tried("nothing lost: the outbox, one text delivered again")
    app = build_app(make_settings(store_url))
    await app.store.redis.flushdb()
    outbox = Outbox(app.store, app.hasher, app.settings)
    memory = Redeliveries(app.store, app.hasher, 600, 5.0)
    text = "09351234567:1000:55555"
    reply = Outbound(ALI, "1112", "Sent 1000 rials. Ref R1", "transfer.sent")
    held_ids: set[str] = set()
    attempts = 0
    last_on: dict[str, Inbound] = {}
    for session, after_uncertain in deliveries:
        if after_uncertain and session in last_on:
            memory.remember_uncertain(last_on[session], "late_answer")
        inbound = memory.inbound(wire(text), ALI, text, "", session, now())
        assert inbound.redelivery is not None
        attempts += not inbound.redelivery.retry
        (held,) = await outbox.hold(inbound, [reply])
        held_ids.add(held.reply_id)
        last_on[session] = inbound
    assert len(held_ids) == attempts
    await outbox.end_lease()
    sent: list[Held] = []
    await OutboxWorker(Outbox(app.store, app.hasher, app.settings), sent.extend).once()
    assert sorted(h.reply_id for h in sent) == sorted(held_ids)
    await app.close()


async def test_two_pin_changes_stalled_then_kill_9_both_confirmed(
        redis_url: str, tmp_path: Path) -> None:
    """End to end: the SMSC stalls, the subscriber changes the PIN twice (both
    acknowledged), the gateway is killed: its successor must send both confirmations."""
    app = build_app(make_settings(redis_url))
    await add_subscribers(app.store, (ALI, "prepaid", 50_000, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    commands = [(ALI, "PIN:55555:22222:22222"), (ALI, "PIN:22222:33333:33333")]
    async with FakeSmsc(redeliver_after=0.3) as smsc:
        first = spawn_gateway(redis_url, smsc.port, tmp_path / "one")
        try:
            await smsc.wait_bound(30)
            await acknowledged_while_stalled(smsc, commands)
            assert await census(app) == 2
        finally:
            await kill(first)
        smsc.faults.stall_submits = False
        second = spawn_gateway(redis_url, smsc.port, tmp_path / "two")
        try:
            deadline = time.monotonic() + 20
            while len(smsc.mt) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            assert [mt.destination for mt in smsc.mt] == [ALI, ALI]
        finally:
            await stop(second)
    stored = (await app.store.subscriber(ALI))["pin"]
    assert stored == app.hasher.pin_digest(ALI, "33333")
    await app.close()


# -- clocks -------------------------------------------------------------------------------

class SkewedTime:
    """The `time` module of a host whose wall clock is `skew` seconds off."""

    def __init__(self, skew: float) -> None:
        self.skew = skew
        self.monotonic = time.monotonic
        self.perf_counter = time.perf_counter

    def time(self) -> float:
        return time.time() + self.skew


async def test_an_otp_taken_over_by_a_gateway_whose_clock_is_behind_is_not_sent_late(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway holds an OTP and dies; the one that takes it over has a clock a minute
    behind. It reckoned the OTP's validity with the first one's deadline on its own clock:
    a minute more, so an OTP past its 120 s went out (here: valid 2 s, taken over at 2.3 s)."""
    settings = make_settings(store_url, otp={"ttl_seconds": 2})
    app = build_app(settings)
    first = Outbox(app.store, app.hasher, settings)
    otp = Outbound(ALI, "7000", "Your code 482913", "otp.sms_card", secret="482913")
    await first.hold(None, [otp])
    await first.rows.renew(first.owner, int((time.time() - 100) * 1000))  # gone, on any clock
    await asyncio.sleep(2.3)
    monkeypatch.setattr("smsgw.transport.outbox.time", SkewedTime(-60))
    monkeypatch.setattr("smsgw.workers.outbox.time", SkewedTime(-60))
    second = Outbox(app.store, app.hasher, settings)
    sent: list[Held] = []
    assert await OutboxWorker(second, sent.extend).once() == 1
    await second.flush()
    assert sent == []
    assert (await app.store.history(ALI))[0]["kind"] == "reply_expired"
    await app.close()


async def test_an_otp_taken_over_by_a_gateway_whose_clock_is_ahead_keeps_its_validity(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(store_url)
    app = build_app(settings)
    first = Outbox(app.store, app.hasher, settings)
    otp = Outbound(ALI, "7000", "Your code 482913", "otp.sms_card", secret="482913")
    await first.hold(None, [otp])
    await first.rows.renew(first.owner, int((time.time() - 100) * 1000))
    monkeypatch.setattr("smsgw.transport.outbox.time", SkewedTime(100))
    monkeypatch.setattr("smsgw.workers.outbox.time", SkewedTime(100))
    sent: list[Held] = []
    assert await OutboxWorker(Outbox(app.store, app.hasher, settings), sent.extend).once() == 1
    assert len(sent) == 1  # not dropped as expired: 120 s from its time in the store
    left = sent[0].expires - SkewedTime(100).time()
    assert 115 < left <= 120
    await app.close()


# -- a temporary error in submit_sm_resp --------------------------------------------------

@pytest.mark.parametrize("status", [ESME_RX_T_APPN, ESME_RSYSERR])
async def test_a_temporary_submit_error_is_sent_again_not_dropped(
        redis_url: str, tmp_path: Path, status: int) -> None:
    """The SMSC answers a confirmation's submit_sm with "temporary application error"
    (or a system error): the transfer is applied, so its confirmations must still reach
    both parties. They were dropped as refused for good."""
    rig = await start_rig(redis_url, tmp_path)
    try:
        rig.smsc.faults.error_next = 2
        rig.smsc.faults.error_status = status
        mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555")
        await rig.smsc.wait_answered(mo)
        mts = await rig.smsc.wait_mt(2, timeout=15)
        assert sorted(mt.destination for mt in mts) == sorted([ALI, SARA])
        assert rig.smsc.stats["errored"] == 2
        assert await rig.balance(SARA) == 1000
        await rig.gateway.settle()
        await rig.gateway.flush()
        assert await census(rig.app) == 0
    finally:
        await stop_rig(rig)


async def test_a_permanent_submit_error_is_still_refused_for_good(
        redis_url: str, tmp_path: Path) -> None:
    rig = await start_rig(redis_url, tmp_path)
    try:
        rig.smsc.faults.error_next = 1
        rig.smsc.faults.error_status = 0x0B  # ESME_RINVDSTADR
        mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555")
        await rig.smsc.wait_answered(mo)
        await rig.smsc.wait_mt(1, timeout=10)
        await rig.gateway.settle()
        await asyncio.sleep(0.3)
        assert len(rig.smsc.mt) == 1 and rig.gateway.client.stats["submit_failed"] == 1
        await rig.gateway.flush()
        assert await census(rig.app) == 0
    finally:
        await stop_rig(rig)


# -- a gateway frozen past its lease -------------------------------------------------------

async def test_a_lapsed_lease_holds_back_what_another_gateway_took_over(
        store_url: str) -> None:
    """The fence, step by step: a gateway's lease runs out (it was frozen), another
    takes its replies over; once it renews, what it was sending is checked first: those
    taken over are not sent again, those still its own are."""
    settings = make_settings(store_url, outbox={"lease_seconds": 0.5})
    app = build_app(settings)
    first = Outbox(app.store, app.hasher, settings)
    await first.renew()
    held = await first.hold(None, [Outbound(RECIPIENT, "1112", f"Ref R{n}", "transfer.sent")
                                   for n in range(2)])
    checks = [first.may_send() for _ in held]
    assert all(check() for check in checks)
    await asyncio.sleep(0.6)  # frozen: the lease runs out
    assert not any(check() for check in checks)
    taken: list[Held] = []
    assert await OutboxWorker(Outbox(app.store, app.hasher, settings), taken.extend).once() == 2
    (late,) = await first.hold(None, [Outbound(RECIPIENT, "1112", "Ref R9", "transfer.sent")])
    late_check = first.may_send()
    await first.renew()  # running again
    assert first.lease_holds()
    assert not any(check() for check in [*checks, late_check])  # decided before the lapse
    assert first.may_send()()
    for each in [*held, late]:
        failed: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        failed.set_exception(NotMine())
        first.finished(each, failed)
    assert [h.reply.text for h in await first.recheck()] == ["Ref R9"]
    await app.close()


async def test_a_gateway_frozen_past_its_lease_does_not_send_what_was_taken_over(
        redis_url: str, tmp_path: Path) -> None:
    """SIGSTOP a gateway (a long GC pause, a frozen VM) while the SMSC stalls its
    submits, past its lease: another gateway takes its replies over and sends them. Once
    the first one runs again, its own unanswered submits time out and it sends them again:
    two live gateways sent the same confirmations, though the SMSC had never accepted the
    first one's (README: a duplicate only when an acceptance or removal was lost)."""
    app = build_app(make_settings(redis_url))
    senders = [f"98936{n:07d}" for n in range(3)]
    await add_subscribers(app.store, (RECIPIENT, "prepaid", 0, 0),
                          *[(s, "prepaid", 100_000, 0) for s in senders])
    for sender in senders:
        await app.store.redis.hset(subscriber_key(sender), "pin",
                                   app.hasher.pin_digest(sender, "55555"))
    commands = [(s, f"09351234567:{1000 + n}:55555") for n, s in enumerate(senders)]
    async with FakeSmsc(redeliver_after=0.3) as smsc:
        frozen = spawn_gateway(redis_url, smsc.port, tmp_path / "one")
        other = None
        try:
            await smsc.wait_bound(30)
            await acknowledged_while_stalled(smsc, commands)
            frozen.send_signal(signal.SIGSTOP)
            await asyncio.sleep(2.5)  # its lease (1 s) runs out
            smsc.faults.stall_submits = False
            other = spawn_gateway(redis_url, smsc.port, tmp_path / "two")
            deadline = time.monotonic() + 30
            while len(smsc.mt) < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            frozen.send_signal(signal.SIGCONT)
            await asyncio.sleep(14)  # past its submits' response timeout (10 s)
            got = Counter(mt.destination for mt in smsc.mt)
            assert got[RECIPIENT] == 3 and all(got[s] == 1 for s in senders), got
        finally:
            frozen.send_signal(signal.SIGCONT)
            await kill(frozen)
            if other is not None:
                await stop(other)
    await app.close()
