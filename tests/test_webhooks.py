"""Webhooks (interfaces.md): events of OTP requests, durable in the store, delivered signed
by the worker to a real aiohttp receiver on loopback that fails, times out, recovers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.config import ConfigError
from smsgw.core.clock import now
from smsgw.services.otp import service as otp_service
from smsgw.services.otp.cards import with_luhn
from smsgw.services.otp.events import OtpEvents
from smsgw.services.otp.store import CardStore
from smsgw.store.webhooks import Head, WebhookStore
from smsgw.transport.gateway import Gateway
from smsgw.transport.msglog import MessageLog
from smsgw.transport.smpp.client import SmppClient
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from smsgw.workers.webhooks import RETRY_FOR_SECONDS, WebhookWorker, signature
from tests.attacks import tried
from tests.conftest import free_port, make_settings
from tests.deliveries import dropped
from tests.test_otp_rules import BLOCKED, CARD, DISABLED, FOREIGN, MOBILE, OTHER, T0, UNKNOWN

SECRET = "whsec-test"
EVENT_FIELDS = {"id", "type", "request_id", "at", "card_last4", "detail"}


@dataclass
class Receiver:
    """A payment system's webhook endpoint: answers each POST as `plan` says (then 200)."""

    plan: list[str] = field(default_factory=list)  # "fail" (500), "slow" (no answer in time)
    got: list[tuple[dict[str, Any], str, bytes]] = field(default_factory=list)
    attempts: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.attempts += 1
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "slow":
            await asyncio.sleep(1.0)
        if step != "ok":
            return web.Response(status=500)
        self.got.append((json.loads(raw), request.headers["X-Smsgw-Signature"], raw))
        return web.Response(status=204)

    def events(self) -> list[dict[str, Any]]:
        """What arrived, repeats dropped by event id (as the receiver is told to)."""
        seen: dict[str, dict[str, Any]] = {}
        for event, _, _ in self.got:
            seen.setdefault(event["id"], event)
        return list(seen.values())


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = web.Application()
    server.router.add_post("/hooks", found.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/hooks"
    yield found
    await runner.cleanup()


def hooked_settings(store_url: str, url: str) -> Any:
    return make_settings(store_url, otp={"webhook_url": url, "webhook_secret": SECRET})


@pytest.fixture
async def bank(any_store_url: str, receiver: Receiver) -> AsyncIterator[App]:
    app = build_app(hooked_settings(any_store_url, receiver.url))
    for number, mobile in ((CARD, MOBILE), (DISABLED, OTHER), (BLOCKED, OTHER)):
        await admin.card_add(app.store, app.hasher, number, mobile, "debit", "static-pw", T0)
    await admin.card_action(app.store, app.hasher, DISABLED, "disable", T0)
    await admin.card_action(app.store, app.hasher, BLOCKED, "block", T0)
    yield app
    await app.close()


def worker(app: App, url: str, **timing: float) -> WebhookWorker:
    quick = {"timeout": 0.3, "first_retry": 0.05, "max_gap": 0.2, "poll": 0.02, **timing}
    return WebhookWorker(app.store, app.otp.events, url, SECRET, **quick)


async def deliver_all(app: App, url: str, until: int, receiver: Receiver,
                      **timing: float) -> None:
    """Run a worker until the receiver has `until` distinct events (or fail)."""
    running = worker(app, url, **timing)
    task = asyncio.create_task(running.run())
    try:
        for _ in range(500):
            if len(receiver.events()) >= until and not await WebhookStore(app.store).backlog():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"delivered {len(receiver.events())} of {until}")
    finally:
        running.stop()
        await task


async def lifecycle(app: App, card: str = CARD) -> str:
    """A payment request whose SMS the SMSC accepts and delivers, then its OTP is used."""
    answer = await app.otp.request_for_payment(card, 1_500_000, "Digikala", T0)
    events = app.otp.events
    await events.sent(answer.request_id, "smsc-1")
    await events.receipt(answer.request_id, "DELIVRD", "000")
    code = answer.replies[0].secret if answer.replies else "000000"
    await app.otp.verify(answer.request_id, code or "", T0)
    return answer.request_id


async def test_events_of_a_request_arrive_in_order_signed(bank: App, receiver: Receiver) -> None:
    request_id = await lifecycle(bank)
    await deliver_all(bank, receiver.url, 3, receiver)
    events = receiver.events()
    assert [e["type"] for e in events] == ["otp.sent", "otp.delivered", "otp.verified"]
    for event, header, raw in receiver.got:
        assert set(event) == EVENT_FIELDS and event["request_id"] == request_id
        assert event["card_last4"] == CARD[-4:]
        datetime.fromisoformat(event["at"])
        stamp = header.split(",")[0].removeprefix("t=")
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
        assert header == f"t={stamp},v1={expected.hexdigest()}"
    assert events[1]["detail"] == {"message_state": "DELIVRD", "error": "000"}
    assert events[2]["detail"] == {"by": "verify"}


async def test_a_receiver_that_fails_then_times_out_gets_everything_when_it_recovers(
        bank: App, receiver: Receiver) -> None:
    receiver.plan = ["fail", "slow", "fail", "slow"]
    first = await lifecycle(bank)
    bank.settings.otp.resend_after_seconds = 0
    answer = await bank.otp.request_for_payment(CARD, 2_000, "Shop", T0 + timedelta(seconds=1))
    second = answer.request_id
    await bank.otp.events.sent(second, "smsc-2")
    await deliver_all(bank, receiver.url, 5, receiver)
    assert receiver.attempts >= 9  # 4 failed attempts, then each event once (or again)
    by_request: dict[str, list[str]] = {}
    for event in receiver.events():
        by_request.setdefault(event["request_id"], []).append(event["type"])
    # the second OTP (of T0, long past by the worker's clock) expires in the sweep
    assert by_request == {first: ["otp.sent", "otp.delivered", "otp.verified"],
                          second: ["otp.sent", "otp.expired"]}


async def test_a_restart_loses_nothing(any_store_url: str, receiver: Receiver) -> None:
    if not any_store_url:
        pytest.skip("the embedded store lives as long as its process")
    app = build_app(hooked_settings(any_store_url, receiver.url))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    await lifecycle(app)
    down = worker(app, "http://127.0.0.1:9/hooks")  # a receiver that is down
    session = aiohttp.ClientSession()
    await down.run_once(session)
    await session.close()
    await app.close()  # the process ends; the events are in Redis
    again = build_app(hooked_settings(any_store_url, receiver.url))
    await deliver_all(again, receiver.url, 3, receiver, first_retry=0.01)
    assert [e["type"] for e in receiver.events()] == ["otp.sent", "otp.delivered",
                                                      "otp.verified"]
    await again.close()


@pytest.mark.parametrize("card", [UNKNOWN, FOREIGN, DISABLED, BLOCKED])
async def test_requests_that_sent_no_sms_get_no_events(bank: App, receiver: Receiver,
                                                       card: str) -> None:
    answer = await bank.otp.request_for_payment(card, 1_500_000, "Digikala", T0)
    assert answer.accepted and answer.replies == []
    events = bank.otp.events
    await events.sent(answer.request_id, "x")  # as if: nothing can make one appear
    await events.receipt(answer.request_id, "DELIVRD", "000")
    for _ in range(3):
        await bank.otp.verify(answer.request_id, "000000", T0)
    late = OtpEvents(bank.store, True, clock=lambda: T0 + timedelta(seconds=121))
    assert await late.expire_due() == 0
    assert await WebhookStore(bank.store).backlog() == 0
    assert await WebhookStore(bank.store).queued(answer.request_id) == []


async def test_voided_once_and_expired_by_the_sweep(bank: App, receiver: Receiver) -> None:
    voided = await bank.otp.request_for_payment(CARD, 1_500_000, "Digikala", T0)
    for _ in range(4):
        await bank.otp.verify(voided.request_id, "wrong!", T0)
    bank.settings.otp.resend_after_seconds = 0
    later = T0 + timedelta(seconds=1)
    expiring = await bank.otp.request_for_payment(CARD, 1_000, "Shop", later)
    sweep = OtpEvents(bank.store, True, clock=lambda: later + timedelta(seconds=119))
    assert await sweep.expire_due() == 0  # not yet
    sweep = OtpEvents(bank.store, True, clock=lambda: later + timedelta(seconds=121))
    assert await sweep.expire_due() == 1  # the voided one is closed already
    assert await sweep.expire_due() == 0  # once
    hooks = WebhookStore(bank.store)
    assert [json.loads(e)["type"] for e in await hooks.queued(voided.request_id)] == [
        "otp.voided"]
    assert [json.loads(e)["type"] for e in await hooks.queued(expiring.request_id)] == [
        "otp.expired"]


async def test_an_otp_payment_verifies_its_request(bank: App) -> None:
    answer = await bank.otp.request_for_payment(CARD, 1_500_000, "Digikala", T0)
    code = answer.replies[0].secret or ""
    assert await bank.otp.authorize(CARD, 1_500_000, "Digikala", code, None, T0) == (True, "")
    queued = await WebhookStore(bank.store).queued(answer.request_id)
    assert [(json.loads(e)["type"], json.loads(e)["detail"]) for e in queued] == [
        ("otp.verified", {"by": "authorize"})]


async def test_retries_start_within_10_seconds_grow_and_last_over_an_hour(bank: App) -> None:
    live = WebhookWorker(bank.store, bank.otp.events, "http://127.0.0.1:9/", SECRET)
    gaps = [live.gap(Head("r", "", attempts, 0.0)) for attempts in range(200)]
    assert gaps[0] <= 10 and all(b >= a * 0.8 for a, b in itertools.pairwise(gaps))
    assert gaps[3] > gaps[0] * 4
    assert RETRY_FOR_SECONDS >= 3600 and sum(gaps) >= RETRY_FOR_SECONDS


async def test_an_event_given_up_lets_the_next_one_go(bank: App, receiver: Receiver) -> None:
    """Past its retry time an event is dropped (logged, counted): the request's later
    events are not stuck behind it."""
    request_id = await lifecycle(bank)
    receiver.plan = ["fail"] * 3
    impatient = worker(bank, receiver.url, retry_for=0.1, first_retry=0.06)
    async with aiohttp.ClientSession() as session:
        for _ in range(40):
            await impatient.run_once(session)
            await asyncio.sleep(0.03)
    kinds = [e["type"] for e in receiver.events()]
    assert kinds[-2:] == ["otp.delivered", "otp.verified"] and "otp.sent" not in kinds
    assert await WebhookStore(bank.store).queued(request_id) == []


def test_the_signature_is_hmac_sha256_over_t_dot_body() -> None:
    body = b'{"id":"ev_1"}'
    mac = hmac.new(b"s", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s", 1700000000, body) == f"t=1700000000,v1={mac}"


def test_a_webhook_url_needs_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="webhook_secret"):
        make_settings(otp={"webhook_url": "https://pay.example/hooks"})
    monkeypatch.setenv("SMSGW_OTP_WEBHOOK_SECRET", "from-env")
    settings = make_settings(otp={"webhook_url": "https://pay.example/hooks"})
    assert settings.otp.webhook_secret == "from-env"


async def test_over_the_wire_sent_delivered_and_failed_from_receipts(
        redis_url: str, receiver: Receiver, tmp_path: Path) -> None:
    """otp.sent from the submit_sm_resp; otp.delivered from a receipt's text, otp.failed
    from one with only the TLVs (receipted_message_id, message_state)."""
    smsc = await FakeSmsc(redeliver_after=0.2).start()
    app = build_app(make_settings(redis_url, smsc={"port": smsc.port,
                                                   "reconnect_max_seconds": 0.3},
                                  otp={"webhook_url": receiver.url, "webhook_secret": SECRET,
                                       "resend_after_seconds": 0}))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    gateway = Gateway(app, SmppClient.from_settings(app.settings),
                      MessageLog(str(tmp_path), 1_000_000, 1))
    task = asyncio.create_task(gateway.run())
    await gateway.client.wait_bound(10)
    try:
        ids = []
        for state, in_text in (("DELIVRD", True), ("UNDELIV", False)):
            smsc.receipt_state, smsc.receipt_in_text = state, in_text
            answer = await app.otp.request_for_payment(CARD, 5_000, "Shop", now())
            await gateway.deliver(answer.replies)
            ids.append(answer.request_id)
            await gateway.settle()
        await deliver_all(app, receiver.url, 4, receiver)
    finally:
        await gateway.stop(drain_timeout=5)
        await asyncio.wait_for(task, 10)
        await smsc.stop()
        await app.close()
    kinds = {(e["request_id"], e["type"]): e["detail"] for e in receiver.events()}
    assert set(kinds) == {(ids[0], "otp.sent"), (ids[0], "otp.delivered"),
                          (ids[1], "otp.sent"), (ids[1], "otp.failed")}
    assert kinds[(ids[1], "otp.failed")]["message_state"] == "UNDELIV"
    assert kinds[(ids[0], "otp.sent")]["message_id"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.from_regex(r"[0-9]{9}", fullmatch=True),
       mobile=st.from_regex(r"989[0-9]{9}", fullmatch=True),
       code=st.integers(min_value=0, max_value=999_999),
       ending=st.sampled_from(["verify", "authorize", "void", "expire"]),
       receipt=st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"]))
async def test_no_otp_card_or_mobile_in_any_event(
        secrecy_bank: App, body: str, mobile: str, code: int, ending: str,
        receipt: str) -> None:
    tried("webhook events: no OTP, card number or mobile")
    app, card, otp = secrecy_bank, with_luhn("627961" + body), f"{code:06d}"
    assume(await CardStore(app.store).card_route(app.hasher.card_digest(card)) == (None, None))
    await admin.card_add(app.store, app.hasher, card, mobile, "debit", "static-pw", T0)
    with patch.object(otp_service.secrets, "randbelow", lambda _: code):
        answer = await app.otp.request_for_payment(card, 1_500_000, "Shop", T0)
    assert answer.replies[0].secret == otp
    events = app.otp.events
    await events.sent(answer.request_id, "smsc-7")
    await events.receipt(answer.request_id, receipt, "000")
    if ending == "verify":
        await app.otp.verify(answer.request_id, otp, T0)
    elif ending == "authorize":
        await app.otp.authorize(card, 1_500_000, "Shop", otp, None, T0)
    elif ending == "void":
        for _ in range(3):
            await app.otp.verify(answer.request_id, "x", T0)
    else:
        await OtpEvents(app.store, True, clock=lambda: T0 + timedelta(seconds=121)).expire_due()
    queued = await WebhookStore(app.store).queued(answer.request_id)
    assert len(queued) == 3
    national = mobile[2:]
    for raw in queued:
        for secret in (card, mobile, national, "0" + national, card[:6] + card[-4:]):
            assert secret not in raw
        event = json.loads(raw)
        assert set(event) == EVENT_FIELDS and event["card_last4"] == card[-4:]
        # the id, moment and request id are random or the clock's: the rest is derived
        derived = json.dumps({k: v for k, v in event.items()
                              if k not in ("id", "at", "request_id")})
        assert otp not in derived


@pytest.fixture
async def secrecy_bank(redis_url: str) -> AsyncIterator[App]:
    app = build_app(hooked_settings(redis_url, "http://127.0.0.1:9/hooks"))
    yield app
    await app.close()


async def test_with_webhooks_on_the_http_caller_sees_the_same_for_every_card(
        bank: App) -> None:
    """Events differ (none for a card that got no SMS); answers, their headers and the
    store round trips do not."""
    from aiohttp.test_utils import TestClient, TestServer

    from smsgw.transport.http_api import make_app

    async def healthy() -> dict[str, Any]:
        return {"store": True}

    client = TestClient(TestServer(make_app(bank.otp, "k", dropped, lambda: T0,
                                            healthy)))
    await client.start_server()
    auth = {"Authorization": "Bearer k"}
    seen = []
    try:
        for card in (CARD, UNKNOWN, FOREIGN, DISABLED, BLOCKED):
            order = {"card": card, "amount": 1_500_000, "merchant": "Digikala"}
            steps = []
            response = await client.post("/v1/otp", json=order, headers=auth)
            request_id = (await response.json())["request_id"]
            steps.append((response.status, sorted(response.headers)))
            for _ in range(3):
                response = await client.post("/v1/otp/verify", headers=auth, json={
                    "request_id": request_id, "otp": "wrong!"})
                steps.append((response.status, await response.json()))
            seen.append(steps)
    finally:
        await client.close()
    assert all(steps == seen[0] for steps in seen)
    assert await WebhookStore(bank.store).backlog() == 1  # the real card's otp.voided
