"""The outbox (transport/outbox.py, workers/outbox.py) on every store: replies durable
before the ack, removed once taken, taken over after a lease, dropped when too late; and
random interleavings of accept / refuse / expire / crash over a fake client (hypothesis).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.commands.main import main
from smsgw.messages import Inbound, Outbound
from smsgw.observability import metrics
from smsgw.transport.gateway import Gateway
from smsgw.transport.http_api import make_app
from smsgw.transport.msglog import MessageLog
from smsgw.transport.outbox import Held, Outbox, listing
from smsgw.transport.smpp.client import ReplyExpired, SmppClient, SubmitRefused
from smsgw.workers.outbox import OutboxWorker
from tests.attacks import tried
from tests.conftest import make_settings
from tests.test_http_api import AUTH, KEY
from tests.test_otp_rules import CARD, MOBILE, T0

OTP = Outbound("989351234567", "7000", "Your code 482913, valid 120 s", "otp.sms_card",
               receipt=True, secret="482913", receipt_about="otp request r1")


def confirmations(count: int) -> list[Outbound]:
    return [Outbound(f"9893600000{n:02d}", "1112", f"Sent {1000 + n} rials. Ref R{n}",
                     "transfer.sent") for n in range(count)]


def done(result: list[str] | None = None, error: Exception | None = None
         ) -> asyncio.Future[list[str]]:
    future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or ["id"])
    return future


async def waiting_count(outbox: Outbox) -> int:
    return (await outbox.rows.census())[0]


async def test_held_replies_stay_until_taken_and_an_otp_is_sealed(app: App) -> None:
    outbox = Outbox(app.store, app.hasher, app.settings)
    held = await outbox.hold(None, [OTP, *confirmations(2)])
    assert await waiting_count(outbox) == 3
    stored = "".join(w.entry for w in await outbox.rows.waiting())
    assert "482913" not in stored and "******" in stored  # the OTP only sealed
    for each in held[:2]:
        outbox.finished(each, done())
    await outbox.flush()
    assert await waiting_count(outbox) == 1 and outbox.holding == 1
    (restored,) = outbox.restored((await outbox.rows.waiting())[0])
    assert restored.reply == held[2].reply


async def test_a_stopped_gateways_replies_are_taken_over_once(app: App) -> None:
    first = Outbox(app.store, app.hasher, app.settings)
    await first.renew()
    held = await first.hold(None, [OTP, *confirmations(3)])
    sent: list[Held] = []
    second = Outbox(app.store, app.hasher, app.settings)
    worker = OutboxWorker(second, sent.extend)
    assert await worker.once() == 0  # the first one's lease holds: nothing taken
    await first.end_lease()  # ... and now it has run out
    resent = metrics.OUTBOX_RESENT._value.get()
    assert await worker.once() == 4
    assert sorted(h.reply.text for h in sent) == sorted(h.reply.text for h in held)
    assert metrics.OUTBOX_RESENT._value.get() == resent + 4
    third = OutboxWorker(Outbox(app.store, app.hasher, app.settings), sent.extend)
    assert await third.once() == 0  # the second one is alive: its replies stay its own


async def test_too_late_is_dropped_and_recorded(app: App) -> None:
    outbox = Outbox(app.store, app.hasher, app.settings)
    otp, confirmation = await outbox.hold(None, [OTP, *confirmations(1)])
    outbox.finished(otp, done(error=ReplyExpired()))
    outbox.finished(confirmation, done(error=SubmitRefused(0x45)))
    await outbox.flush()
    assert await waiting_count(outbox) == 0
    assert (await app.store.history(OTP.to))[0] | {"at": ""} == {
        "kind": "reply_expired", "reason": "otp_validity", "about": "otp.sms_card", "at": ""}
    refused = (await app.store.history(confirmation.reply.to))[0]
    assert refused["kind"] == "reply_refused" and refused["status"] == "0x45"


async def test_an_otp_taken_over_past_its_validity_is_not_sent(app: App) -> None:
    settings = make_settings("", otp={"ttl_seconds": 1}).model_copy()
    first = Outbox(app.store, app.hasher, settings)
    await first.hold(None, [OTP])
    await first.end_lease()
    await asyncio.sleep(1.1)
    sent: list[Held] = []
    second = Outbox(app.store, app.hasher, app.settings)
    assert await OutboxWorker(second, sent.extend).once() == 1
    await second.flush()
    assert sent == [] and await waiting_count(second) == 0
    assert (await app.store.history(OTP.to))[0]["kind"] == "reply_expired"


async def test_admin_outbox_lists_what_waits_masked(redis_url: str) -> None:
    app = build_app(make_settings(redis_url))
    await Outbox(app.store, app.hasher, app.settings).hold(None, [OTP, *confirmations(1)])
    env = {"SMSGW_SECURITY_HASH_KEY": "test-hash-key-0123456789abcdef"}
    result = await asyncio.to_thread(CliRunner().invoke, main, [
        "admin", "outbox", "--json", "--redis", redis_url], env=env)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["kind"] for r in rows} == {"otp.sms_card", "transfer.sent"}
    assert all(r["age_seconds"] >= 0 and r["to"] for r in rows)
    assert "482913" not in result.output and "******" in result.output
    text = await asyncio.to_thread(CliRunner().invoke, main, [
        "admin", "outbox", "--redis", redis_url], env=env)
    assert "2 replies waiting" in text.output and "482913" not in text.output
    await app.close()


# -- random interleavings ----------------------------------------------------------------

ACTIONS = st.lists(st.tuples(st.sampled_from(["accept", "refuse", "expire", "flush", "crash",
                                              "hold"]), st.integers(0, 5)),
                   min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS)
def test_nothing_lost_under_any_interleaving(actions: list[tuple[str, int]]) -> None:
    """Whatever happens in whatever order (replies taken, refused, expired, removals
    flushed or not, the gateway crashing with replies unsent), every reply ends accepted
    or recorded, the outbox ends empty, and a reply goes out twice only when it had been
    accepted and its removal not yet written when the gateway crashed."""
    tried("nothing lost: the outbox")
    asyncio.run(_interleave(actions))


async def _interleave(actions: list[tuple[str, int]]) -> None:
    app = build_app(make_settings(""))
    outbox = Outbox(app.store, app.hasher, app.settings)
    in_flight: list[Held] = []  # sent by the live gateway, no answer yet
    accepted: Counter[str] = Counter()
    dropped: set[str] = set()
    unflushed_accepted: set[str] = set()
    may_repeat: set[str] = set()
    made = 0
    for action, pick in actions:
        if action == "hold" or (not in_flight and action in ("accept", "refuse", "expire")):
            in_flight += await outbox.hold(None, [Outbound(
                f"98936000{made:04d}", "1112", f"reply {made}", "transfer.sent")])
            made += 1
            continue
        if action == "flush":
            await outbox.flush()
            unflushed_accepted.clear()
        elif action == "crash":  # what was in flight or unflushed is the successor's
            may_repeat |= unflushed_accepted
            unflushed_accepted.clear()
            outbox, in_flight = await _successor(app, outbox)
        else:
            held = in_flight.pop(pick % len(in_flight))
            _answer(outbox, held, action, accepted, dropped, unflushed_accepted)
    while in_flight:  # the SMSC takes the rest
        _answer(outbox, in_flight.pop(), "accept", accepted, dropped, unflushed_accepted)
    await outbox.flush()
    assert await waiting_count(outbox) == 0
    texts = {f"reply {n}" for n in range(made)}
    assert set(accepted) | dropped == texts
    assert all(count == 1 or text in may_repeat for text, count in accepted.items())
    await app.close()


def _answer(outbox: Outbox, held: Held, action: str, accepted: Counter[str],
            dropped: set[str], unflushed: set[str]) -> None:
    text = held.reply.text
    if action == "accept":
        accepted[text] += 1
        unflushed.add(text)
        outbox.finished(held, done())
    else:
        dropped.add(text)
        error = ReplyExpired() if action == "expire" else SubmitRefused(0x45)
        outbox.finished(held, done(error=error))


async def _successor(app: App, dead: Outbox) -> tuple[Outbox, list[Held]]:
    await dead.end_lease()  # its lease ran out
    successor = Outbox(app.store, app.hasher, app.settings)
    taken: list[Held] = []
    await OutboxWorker(successor, taken.extend).once()
    return successor, taken



async def test_an_http_otp_is_in_the_outbox_before_its_202(app: App, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The bank's 202 says the SMS will go: it must be durable by then (a gateway killed
    just after the answer sends it after its restart). Here the outbox's write is held
    back: the 202 waits for it; no SMSC is bound, so the outbox is all there is."""
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    gateway = Gateway(app, SmppClient.from_settings(app.settings),
                      MessageLog(str(tmp_path), 1_000_000, 1))
    write_allowed = asyncio.Event()
    hold = gateway.outbox.hold

    async def slow_hold(inbound: Inbound | None, replies: list[Outbound]) -> list[Held]:
        await write_allowed.wait()
        return await hold(inbound, replies)

    monkeypatch.setattr(gateway.outbox, "hold", slow_hold)
    client = TestClient(TestServer(make_app(app.otp, KEY, gateway.deliver, lambda: T0,
                                            _healthy)))
    await client.start_server()
    try:
        asking = asyncio.ensure_future(client.post(
            "/v1/otp", headers=AUTH, json={"card": CARD, "amount": 1_500_000,
                                           "merchant": "Shop"}))
        await asyncio.sleep(0.3)
        assert not asking.done()  # no answer while the SMS is not kept
        write_allowed.set()
        answer = await asyncio.wait_for(asking, 5)
        assert answer.status == 202
        rows = await listing(app.store, app.hasher, app.settings)
        assert [(row["to"], row["kind"]) for row in rows] == [(MOBILE, "otp.sms_payment")]
        assert re.search(r"\d{6}", rows[0]["text"]) is None  # masked as in the log
    finally:
        await client.close()


async def test_an_http_otp_is_submitted_only_after_its_202(app: App, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Encoding and writing the submit_sm before the answer would make a real card's 202
    slower than an unknown card's, which sends nothing (the second outside attack
    measured ~90 µs): the SMS is submitted once the answer is on its way."""
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    gateway = Gateway(app, SmppClient.from_settings(app.settings))
    events: list[str] = []
    send = gateway._send

    def recorded_send(inbound: Inbound | None, held: list[Held]) -> None:
        events.append(f"submit {len(held)}")
        send(inbound, held)

    monkeypatch.setattr(gateway, "_send", recorded_send)
    web_app = make_app(app.otp, KEY, gateway.deliver, lambda: T0, _healthy)

    async def answering(_: web.Request, response: web.StreamResponse) -> None:
        events.append(f"answer {response.status}")

    web_app.on_response_prepare.append(answering)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        answer = await client.post("/v1/otp", headers=AUTH, json={
            "card": CARD, "amount": 1_500_000, "merchant": "Shop"})
        assert answer.status == 202
        for _ in range(100):  # (no SMSC is bound: the submit is only queued)
            if len(events) == 2:
                break
            await asyncio.sleep(0.01)
        assert events == ["answer 202", "submit 1"]
    finally:
        await client.close()


async def _healthy() -> dict[str, object]:
    return {"store": True}
