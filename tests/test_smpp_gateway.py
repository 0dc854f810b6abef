"""End to end over TCP: gateway <-> fake SMSC <-> real Redis."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.core.clock import now
from smsgw.messages import Outbound
from smsgw.observability import metrics
from smsgw.store import StoreUnavailable
from smsgw.store.keys import subscriber_key
from smsgw.transport.gateway import Gateway
from smsgw.transport.msglog import MessageLog
from smsgw.transport.smpp.client import SmppClient
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from smsgw.transport.smpp.pdu import (
    DELIVER_SM,
    ESME_ROK,
    ESME_RX_T_APPN,
    RESPONSE_BIT,
    SUBMIT_SM,
)
from smsgw.transport.smpp.sms_text import Part, encode_reply
from tests.conftest import RedisServer, add_subscribers, free_port, make_settings

ALI, SARA = "989361111111", "989351234567"


@dataclass
class Rig:
    smsc: FakeSmsc
    app: App
    gateway: Gateway
    task: asyncio.Task[None]
    log_dir: Path

    async def balance(self, msisdn: str) -> int:
        return int((await self.app.store.subscriber(msisdn))["balance"])

    def log_records(self) -> list[dict[str, str]]:
        path = self.log_dir / "messages.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def start_rig(redis_url: str, log_dir: Path, **smsc_settings: object) -> Rig:
    smsc = await FakeSmsc(redeliver_after=0.2).start()
    settings = make_settings(redis_url, smsc={
        "port": smsc.port, "reconnect_max_seconds": 0.3, "enquire_link_seconds": 5.0,
        **smsc_settings})
    app = build_app(settings)
    await add_subscribers(app.store, (ALI, "prepaid", 50_000, 0), (SARA, "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    gateway = Gateway(app, SmppClient.from_settings(app.settings),
                      MessageLog(str(log_dir), 10_000_000, 2))
    task = asyncio.create_task(gateway.run())
    await smsc.wait_bound()
    await gateway.client.wait_bound(10)
    return Rig(smsc, app, gateway, task, log_dir)


async def stop_rig(rig: Rig) -> None:
    await rig.gateway.stop(drain_timeout=5)
    await asyncio.wait_for(rig.task, 10)
    await rig.smsc.stop()
    await rig.app.close()


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    started = await start_rig(redis_url, tmp_path)
    yield started
    await stop_rig(started)


async def test_transfer_over_the_wire(rig: Rig) -> None:
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:2000:55555")
    await rig.smsc.wait_answered(mo)
    mts = await rig.smsc.wait_mt(2)
    assert {mt.destination for mt in mts} == {ALI, SARA}
    assert all(mt.data_coding == "ucs2" for mt in mts)  # Persian replies as UCS2
    assert mo.statuses == [ESME_ROK]
    assert await rig.balance(ALI) == 47_500 and await rig.balance(SARA) == 2_000
    assert rig.smsc.violations == []


async def test_message_log_masks_the_pin(rig: Rig) -> None:
    for text in ("09351234567:2000:55555", "PIN:55555:66666:66666", "09351234567:2000:9876"):
        await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", text))
    await rig.gateway.settle()
    records = rig.log_records()
    inbound = [r for r in records if "in_reply_to" not in r]
    assert len(inbound) == 3 and all(r["id"] for r in records)
    logged = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    for secret in ("55555", "66666", "9876"):
        assert secret not in logged
    assert inbound[0]["text"].startswith("09351234567:2000:h~")
    replies = [r for r in records if "in_reply_to" in r]
    assert {r["in_reply_to"] for r in replies} == {r["id"] for r in inbound}


async def test_replay_of_the_gateway_log_checks_masked_pins(rig: Rig, tmp_path: Path) -> None:
    """The log written by the gateway replays: a PIN digest token checks like the PIN."""
    from smsgw.transport.log_replay import replay

    await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "09351234567:2000:55555"))
    await rig.gateway.settle()
    lines = (rig.log_dir / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    fresh = build_app(make_settings(""))  # an empty embedded store with the same key
    await add_subscribers(fresh.store, (ALI, "prepaid", 50_000, 0), (SARA, "prepaid", 0, 0))
    await fresh.store.redis.hset(subscriber_key(ALI), "pin", fresh.hasher.pin_digest(ALI, "55555"))
    out = tmp_path / "out.jsonl"
    with out.open("w", encoding="utf-8") as handle:
        await replay(fresh.router, fresh.hasher, lines, handle, handle)
    assert int((await fresh.store.subscriber(ALI))["balance"]) == 47_500
    await fresh.close()


async def test_deliberate_repeat_on_a_healthy_link_is_applied_twice(rig: Rig) -> None:
    first = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555")
    await rig.smsc.wait_answered(first)
    second = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555")
    await rig.smsc.wait_answered(second)
    assert await rig.balance(SARA) == 20_000


async def test_redelivery_after_a_lost_answer_is_applied_once(rig: Rig) -> None:
    rig.smsc.faults.ignore_deliver_resp = 1  # our answer is "lost" with the link
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555")
    await rig.smsc.wait_answered(mo, timeout=15)
    assert mo.attempts == 2  # delivered again after the reconnect
    await rig.gateway.settle()
    assert await rig.balance(SARA) == 10_000  # applied once
    assert await rig.balance(ALI) == 50_000 - 10_500
    to_sender = [mt for mt in rig.smsc.mt if mt.destination == ALI]
    assert len(to_sender) == 2 and to_sender[0].text == to_sender[1].text  # replies re-sent
    # a deliberate repeat afterwards, on the healthy new link, is a new transfer
    await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555"))
    assert await rig.balance(SARA) == 20_000


@pytest.mark.parametrize("lost", [2, 3])
async def test_a_redelivery_whose_answer_is_lost_again_is_still_applied_once(
        rig: Rig, lost: int) -> None:
    """Link drops in a row, each losing our answers: every delivery after the first, on
    a session of its own, must find the outcome (a redelivery that claimed the first
    attempt's candidate kept none of its own, so the third delivery applied each
    transfer again: found by the outside attack)."""
    rig.smsc.faults.ignore_deliver_resp = lost
    amounts = (1000, 1500, 2000)
    mos = [rig.smsc.inject_mo(ALI, "1112", f"09351234567:{amount}:55555") for amount in amounts]
    for mo in mos:
        await rig.smsc.wait_answered(mo, timeout=30)
    assert max(mo.attempts for mo in mos) > lost  # delivered again after each drop
    await rig.gateway.settle()
    fee = rig.app.settings.transfer.fee
    assert await rig.balance(SARA) == sum(amounts)  # each applied once
    assert await rig.balance(ALI) == 50_000 - sum(amounts) - len(amounts) * fee
    # every delivery was answered with the one outcome: one reference per transfer
    references = {mt.text for mt in rig.smsc.mt if mt.destination == ALI}
    assert len(references) == len(amounts)


async def test_a_store_answer_lost_after_the_script_ran_is_not_applied_twice(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The script ran, but the connection to Redis broke before its answer came back: the
    gateway answers "deliver again", and the SMSC does, on the same healthy link."""
    store = rig.app.store
    original = store.run_command
    lost: list[str] = []

    async def answer_lost_once(*args: Any) -> dict[str, Any]:
        outcome = await original(*args)
        if not lost:
            lost.append(outcome["status"])
            raise StoreUnavailable("connection reset while reading the answer")
        return outcome

    monkeypatch.setattr(store, "run_command", answer_lost_once)
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555")
    await rig.smsc.wait_answered(mo, timeout=15)
    assert lost == ["ok"] and mo.statuses == [ESME_RX_T_APPN, ESME_ROK]
    await rig.gateway.settle()
    assert await rig.balance(SARA) == 10_000 and await rig.balance(ALI) == 50_000 - 10_500
    assert len([mt for mt in rig.smsc.mt if mt.destination == SARA]) == 1
    # a deliberate repeat afterwards is a new transfer
    await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555"))
    assert await rig.balance(SARA) == 20_000


async def test_an_answer_later_than_the_smscs_timer_is_not_applied_twice(
        redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway answers after the SMSC gave up waiting; the SMSC delivers the message
    again on the same healthy link. The second delivery must apply nothing."""
    rig = await start_rig(redis_url, tmp_path, response_timer_seconds=0.3)
    rig.smsc.response_timeout = 0.3
    original = rig.app.router.handle
    calls: list[str] = []

    async def slow_first(message: Any) -> Any:
        calls.append(message.text)
        if len(calls) == 1:
            await asyncio.sleep(0.6)
        return await original(message)

    monkeypatch.setattr(rig.app.router, "handle", slow_first)
    late = metrics.UNCERTAIN_ANSWERS.labels(cause="late_answer")
    late_before = late._value.get()
    try:
        mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555")
        await rig.smsc.wait_answered(mo, timeout=15)
        await rig.gateway.settle()
        assert mo.attempts >= 2 and len(calls) >= 2  # delivered again, handled again
        assert await rig.balance(SARA) == 10_000  # ... and applied once
        assert await rig.balance(ALI) == 50_000 - 10_500
        assert late._value.get() == late_before + 1  # operators see it in /metrics
    finally:
        await stop_rig(rig)


async def test_redelivered_wrong_pin_strikes_once(rig: Rig) -> None:
    rig.smsc.faults.ignore_deliver_resp = 1
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:11111")
    await rig.smsc.wait_answered(mo, timeout=15)
    shown = await admin.show(rig.app.store, ALI, now(), rig.app.settings.transfer)
    assert shown["failed_pin_attempts"] == 1


async def test_smsc_message_id_tlv_dedupes(redis_url: str, tmp_path: Path) -> None:
    from aiosmpplib.state import OptionalParam

    tag = 0x1401
    rig = await start_rig(redis_url, tmp_path, message_id_tlv=tag)
    try:
        for _ in range(2):  # the SMSC sends the same message id twice
            mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555",
                                    tlvs=[OptionalParam(tag, "smsc-77")])
            await rig.smsc.wait_answered(mo)
        assert await rig.balance(SARA) == 10_000
    finally:
        await stop_rig(rig)


async def test_reconnects_after_the_link_drops(rig: Rig) -> None:
    rig.smsc.drop_links()
    await asyncio.sleep(0.05)
    await rig.smsc.wait_bound(timeout=10)
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555")
    await rig.smsc.wait_answered(mo)
    assert rig.gateway.client.stats["link_drops"] >= 1
    assert rig.smsc.stats["binds"] >= 2


async def test_refused_binds_then_success(redis_url: str, tmp_path: Path) -> None:
    smsc = await FakeSmsc(redeliver_after=0.2, system_id="smsgw", password="secret").start()
    smsc.faults.refuse_binds = 2
    app = build_app(make_settings(redis_url, smsc={
        "port": smsc.port, "reconnect_max_seconds": 0.3, "password": "secret"}))
    gateway = Gateway(app, SmppClient.from_settings(app.settings))
    task = asyncio.create_task(gateway.run())
    try:
        await smsc.wait_bound(timeout=10)
        assert smsc.stats["binds_refused"] == 2
        assert gateway.client.stats["bind_failures"] == 2
    finally:
        await gateway.stop()
        await task
        await smsc.stop()
        await app.close()


async def test_wrong_password_is_refused(redis_url: str) -> None:
    smsc = await FakeSmsc(system_id="smsgw", password="right").start()
    app = build_app(make_settings(redis_url, smsc={
        "port": smsc.port, "reconnect_max_seconds": 0.2, "password": "wrong"}))
    gateway = Gateway(app, SmppClient.from_settings(app.settings))
    task = asyncio.create_task(gateway.run())
    await asyncio.sleep(0.8)
    assert smsc.bound_sessions == 0 and smsc.stats["binds_refused"] >= 2
    await gateway.stop()
    await task
    await smsc.stop()
    await app.close()


async def test_throttled_submits_are_retried(rig: Rig) -> None:
    rig.smsc.faults.throttle_next = 3
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555")
    await rig.smsc.wait_answered(mo)
    await rig.smsc.wait_mt(2, timeout=15)
    assert rig.gateway.client.stats["throttled"] == 3
    assert rig.smsc.stats["throttled"] == 3


async def test_slow_smsc_responses(rig: Rig) -> None:
    rig.smsc.faults.response_delay = 0.3
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555")
    await rig.smsc.wait_answered(mo)
    await rig.gateway.settle()
    assert len(rig.smsc.mt) == 2


async def test_concatenation_both_ways_and_encodings(rig: Rig) -> None:
    long_persian = "سلام " * 40  # 200 characters: 3 UCS2 parts inbound
    parts = encode_reply(long_persian)
    assert len(parts) == 3
    await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", long_persian))
    mt = (await rig.smsc.wait_mt(1))[0]
    assert mt.parts >= 2 and mt.data_coding == "ucs2"  # the long Persian help reply
    await rig.smsc.wait_answered(rig.smsc.inject_mo(
        ALI, "1112", "héllo", parts=[Part("latin_1", "héllo".encode("latin-1"), 0)]))
    gsm_long = "0935" + "1" * 200
    await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", gsm_long))
    await rig.gateway.settle()
    inbound = [r["text"] for r in rig.log_records() if "in_reply_to" not in r]
    assert inbound[0] == normalise_spaces(long_persian)
    assert "héllo" in inbound[1]
    assert len(inbound[2]) == len(gsm_long)  # whole, its digits hidden (masking.py)
    assert "1111" not in inbound[2]
    assert rig.smsc.violations == []


def normalise_spaces(text: str) -> str:
    from smsgw.core.text import normalise_compact

    return normalise_compact(text)


async def test_english_reply_goes_as_gsm(rig: Rig) -> None:
    await rig.app.store.redis.hset(subscriber_key(ALI), "lang", "en")
    await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "hello"))
    mt = (await rig.smsc.wait_mt(1))[0]
    assert mt.data_coding == "gsm0338" and mt.text.startswith("Command not understood")


async def test_garbage_on_the_socket(rig: Rig) -> None:
    unknown_command = bytes.fromhex("00000010" "0000abcd" "00000000" "00000007")
    rig.smsc.send_raw(unknown_command)  # the gateway answers generic_nack, keeps serving
    bad_deliver = bytes.fromhex("00000014" "00000005" "00000000" "00000009") + b"\xff\x01\x02\x03"
    rig.smsc.send_raw(bad_deliver)  # undecodable deliver_sm: refused, session kept
    await asyncio.sleep(0.1)
    mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555")
    await rig.smsc.wait_answered(mo)
    assert rig.gateway.client.stats["link_drops"] == 0
    assert rig.gateway.client.stats["garbled"] == 1
    rig.smsc.send_raw(bytes.fromhex("00000005"))  # impossible length: the link is dropped
    await asyncio.sleep(0.1)
    await rig.smsc.wait_bound(timeout=10)
    # (a different text: an identical one right after a drop counts as a redelivery)
    await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "09351234567:2000:55555"))
    assert await rig.balance(SARA) == 3_000


async def test_fake_smsc_answers_garbage_with_generic_nack() -> None:
    async with FakeSmsc() as smsc:
        reader, writer = await asyncio.open_connection("127.0.0.1", smsc.port)
        writer.write(bytes.fromhex("00000010" "00001234" "00000000" "00000001"))
        header = await asyncio.wait_for(reader.readexactly(16), 5)
        assert header[4:8] == bytes.fromhex("80000000") and header[12:16] == b"\x00\x00\x00\x01"
        writer.write(bytes.fromhex("00000015" "00000009" "00000000" "00000002") + b"\xff" * 5)
        header = await asyncio.wait_for(reader.readexactly(16), 5)
        assert header[4:8] == bytes.fromhex("80000000")  # a broken bind body: nack too
        writer.write(bytes.fromhex("00000010" "00000015" "00000000" "00000003"))
        header = await asyncio.wait_for(reader.readexactly(16), 5)
        assert header[4:8] == bytes.fromhex("80000015")  # and it still answers enquire_link
        writer.close()


async def test_graceful_shutdown_finishes_messages_in_flight(redis_url: str,
                                                             tmp_path: Path) -> None:
    rig = await start_rig(redis_url, tmp_path)
    mos = [rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555") for _ in range(30)]
    while not any(mo.statuses for mo in mos):
        await asyncio.sleep(0.001)
    await rig.gateway.stop(drain_timeout=5)
    await asyncio.wait_for(rig.task, 10)
    answered_ok = sum(mo.statuses[:1] == [ESME_ROK] for mo in mos)
    applied = await rig.balance(SARA) // 1000
    assert applied == answered_ok  # every message answered OK was applied, no other
    assert len([mt for mt in rig.smsc.mt if mt.destination == SARA]) == applied  # replies sent
    await rig.smsc.stop()
    await rig.app.close()



async def test_a_stop_right_after_http_otps_still_sends_them(redis_url: str,
                                                             tmp_path: Path) -> None:
    """OTPs asked for over HTTP are submitted in the loop turn after their 202: a stop in
    the same turn unbound before them (found by the outside attack: 4 of 5 sent, and the
    stop waited its whole drain time)."""
    rig = await start_rig(redis_url, tmp_path)
    otps = [Outbound(f"98912{n:07d}", "7000", f"code 4{n:05d}", "otp.code", secret=f"4{n:05d}")
            for n in range(5)]
    for otp in otps:
        await rig.gateway.deliver([otp])
    await rig.gateway.stop(drain_timeout=3)
    await asyncio.wait_for(rig.task, 10)
    sent = sorted(mt.destination for mt in rig.smsc.mt if mt.destination.startswith("98912"))
    assert sent == sorted(otp.to for otp in otps)
    await rig.smsc.stop()
    await rig.app.close()

@pytest.fixture
def durable_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of our own with an append-only file, so a restart keeps data."""
    with tempfile.TemporaryDirectory(prefix="smsgw-aof-") as workdir:
        server = RedisServer(free_port(), Path(workdir), durable=True)
        server.start()
        yield server  # type: ignore[misc]
        server.stop()


async def test_redis_outage_gives_temporary_errors_then_success(durable_redis: RedisServer,
                                                                tmp_path: Path) -> None:
    rig = await start_rig(durable_redis.url, tmp_path)
    try:
        durable_redis.stop()
        mo = rig.smsc.inject_mo(ALI, "1112", "09351234567:10000:55555")
        while ESME_RX_T_APPN not in mo.statuses:
            await asyncio.sleep(0.05)
        durable_redis.start()
        await rig.smsc.wait_answered(mo, timeout=20)
        assert mo.statuses[-1] == ESME_ROK and ESME_RX_T_APPN in mo.statuses
        assert await rig.balance(SARA) == 10_000 and await rig.balance(ALI) == 39_500
    finally:
        await stop_rig(rig)


async def test_gateway_answers_the_smscs_enquire_link(rig: Rig) -> None:
    assert await rig.smsc.enquire_links() == 1


async def test_submit_window_is_never_exceeded(redis_url: str, tmp_path: Path) -> None:
    rig = await start_rig(redis_url, tmp_path, window=3)
    try:
        rig.smsc.faults.response_delay = 0.1
        mos = [rig.smsc.inject_mo(ALI, "1112", "hello") for _ in range(12)]
        for mo in mos:
            await rig.smsc.wait_answered(mo)
        assert all(mt.parts == 2 for mt in await rig.smsc.wait_mt(12, timeout=20))
        assert rig.smsc.stats["max_outstanding_submits"] == 3
    finally:
        await stop_rig(rig)


async def test_receiver_and_transmitter_binds(redis_url: str, tmp_path: Path) -> None:
    rig = await start_rig(redis_url, tmp_path, bind="receiver+transmitter")
    try:
        assert rig.smsc.bound_sessions == 2
        await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555"))
        assert len(await rig.smsc.wait_mt(2)) == 2
    finally:
        await stop_rig(rig)


async def test_confirmation_receipts_are_recorded_when_asked(redis_url: str,
                                                             tmp_path: Path) -> None:
    rig = await start_rig(redis_url, tmp_path)
    try:
        await stop_rig_gateway_only(rig)
        settings = make_settings(redis_url, smsc={"port": rig.smsc.port},
                                 transfer={"receipts": True})
        rig.app = build_app(settings)
        rig.gateway = Gateway(rig.app, SmppClient.from_settings(rig.app.settings))
        rig.task = asyncio.create_task(rig.gateway.run())
        await rig.smsc.wait_bound()
        await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:55555"))
        mts = await rig.smsc.wait_mt(2)
        assert all(mt.registered_delivery == 1 for mt in mts)
        for _ in range(100):
            history = await rig.app.store.history(SARA)
            if any(entry["kind"] == "receipt" for entry in history):
                break
            await asyncio.sleep(0.05)
        receipt = next(entry for entry in history if entry["kind"] == "receipt")
        assert receipt["state"] == "DELIVRD" and receipt["message_id"] in mts[1].message_ids + \
            mts[0].message_ids
    finally:
        await stop_rig(rig)


async def stop_rig_gateway_only(rig: Rig) -> None:
    await rig.gateway.stop(drain_timeout=5)
    await asyncio.wait_for(rig.task, 10)
    await rig.app.close()


async def test_one_senders_messages_apply_in_arrival_order(rig: Rig) -> None:
    """A PIN change followed at once by a transfer with the new PIN: only in order does the
    transfer pass. Many senders interleave meanwhile."""
    others = [f"98936{n:07d}" for n in range(20)]
    await add_subscribers(rig.app.store, *[(m, "prepaid", 0, 0) for m in others])
    noise = [rig.smsc.inject_mo(m, "1112", "hello") for m in others]
    change = rig.smsc.inject_mo(ALI, "1112", "PIN:55555:66666:66666")
    transfer = rig.smsc.inject_mo(ALI, "1112", "09351234567:1000:66666")
    for mo in [*noise, change, transfer]:
        await rig.smsc.wait_answered(mo)
    assert await rig.balance(SARA) == 1_000


def test_a_rate_limited_sender_waits_without_burning_the_cpu() -> None:
    """Held back by [smsc] submit_rate, the sender sleeps: on uvloop (what `smsgw run`
    uses) it once woke at once for sub-millisecond waits and spun a whole core,
    starving the gateway it runs in."""
    import time

    from smsgw.transport.smpp.client import TokenBucket

    uvloop = pytest.importorskip("uvloop")

    async def take_5000() -> tuple[float, float]:
        bucket = TokenBucket(5000)
        bucket.tokens = 0
        cpu, wall = time.process_time(), time.monotonic()
        for _ in range(5000):
            await bucket.take()
        return time.process_time() - cpu, time.monotonic() - wall

    cpu, wall = uvloop.run(take_5000())
    assert wall >= 0.9  # the rate held: 5,000 tokens at 5,000/s take about a second
    assert cpu < 0.5 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s of waiting"


async def test_a_messages_answer_goes_out_before_its_replies(rig: Rig) -> None:
    """A wave of messages (the SMSC's window) gets its deliver_sm answers first, so the
    SMSC can send the next ones while the replies are encoded: each answer is written
    (flushed) before its replies' submit_sm are queued (they were queued ahead of it)."""
    session = rig.gateway.client._session
    assert session is not None
    written: list[str] = []
    for conn in session.connections:
        write, flush = conn.write, conn.flush

        def recording_write(data: bytes, write: Any = write) -> None:
            command = int.from_bytes(data[4:8], "big")
            written.append({DELIVER_SM | RESPONSE_BIT: "answer", SUBMIT_SM: "submit"}.get(
                command, hex(command)))
            write(data)

        def recording_flush(flush: Any = flush) -> None:
            written.append("flush")
            flush()

        conn.write = recording_write  # type: ignore[method-assign]
        conn.flush = recording_flush  # type: ignore[method-assign]
    mos = [rig.smsc.inject_mo(ALI, "1112", f"09351234567:{1000 + n}:55555") for n in range(3)]
    for mo in mos:
        await rig.smsc.wait_answered(mo)
    await rig.smsc.wait_mt(6)
    first_submit = written.index("submit")
    assert written[:first_submit].count("answer") >= 1
    assert written[first_submit - 1] == "flush"
    assert written.count("answer") == 3 and written.count("submit") == 9  # 3 parts each
    assert await rig.balance(ALI) == 50_000 - 3 * 500 - 3000 - 3
