"""Nothing reveals whether a card exists (dynamic-password.md, interfaces.md "HTTP").

An attacker with the API key sends the same requests for a real card, an unknown one, a
foreign (non-bank BIN) one, a disabled one and a blocked one. What they can see — status,
body, the metrics — must be the same transcript for all five; and so must the work behind
it (the Redis commands run, inside scripts too, counted by INFO commandstats on the
test's own redis-server; the keyed hashes computed; the SMS texts rendered), since work
shows in the timing. Only the SMS itself, which goes to the card's registered mobile,
differs. The real card's owner may have paid with the static password today, so that a
small amount is "near its daily limit" and a larger one beyond it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.core.replies import Templates
from smsgw.messages import Outbound
from smsgw.transport.gateway import Gateway
from smsgw.transport.http_api import make_app
from smsgw.transport.smpp.client import SmppClient
from tests.attacks import tried
from tests.conftest import make_settings
from tests.deliveries import dropped
from tests.test_otp_rules import BLOCKED, CARD, DISABLED, FOREIGN, MOBILE, T0, UNKNOWN, otp_of

KEY = "test-api-key"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
KINDS = {"real": CARD, "unknown": UNKNOWN, "foreign": FOREIGN, "disabled": DISABLED,
         "blocked": BLOCKED}
STATIC_PW = "static-pw"  # the real, disabled and blocked cards' password
LIMIT = 1_000_000  # [otp] static_daily_limit
# connection upkeep, not work a request asks for (a pool may open a connection any time)
NOT_REQUEST_WORK = {"cmdstat_info", "cmdstat_client", "cmdstat_hello", "cmdstat_select",
                    "cmdstat_ping"}
WATCHED_METRICS = ("smsgw_otp_events_total", "smsgw_http_request_seconds_count")

Action = tuple[Any, ...]


def metric_samples() -> Counter[str]:
    """The counters an observer of GET /metrics sees (not the latency buckets: those
    are timing, which the same work keeps alike but no test can pin down)."""
    found: Counter[str] = Counter()
    for family in text_string_to_metric_families(generate_latest().decode()):
        for sample in family.samples:
            if sample.name in WATCHED_METRICS:
                found[f"{sample.name}{json.dumps(sample.labels, sort_keys=True)}"] = int(
                    sample.value)
    return found


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after.keys() | before.keys()
            if after[k] != before[k]}


@dataclass
class Step:
    """One request as the attacker sees it, and the work it cost."""

    answer: tuple[int, Any]
    metrics: dict[str, int]
    commands: dict[str, int]
    digests: dict[str, int]
    renders: int


@dataclass
class Attacker:
    client: TestClient  # type: ignore[type-arg]
    app: App
    redis: redis.Redis
    card: str
    now: datetime = T0
    sent: list[Outbound] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    digests: Counter[str] = field(default_factory=Counter)
    renders: int = 0

    def commandstats(self) -> Counter[str]:
        stats = self.redis.info("commandstats")
        return Counter({name: int(value["calls"]) for name, value in stats.items()
                        if name not in NOT_REQUEST_WORK})

    def wrong_code(self) -> str:
        codes = {otp_of(sms) for sms in self.sent}
        return next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in codes)

    def normalised(self, body: Any) -> Any:
        if isinstance(body, dict) and "request_id" in body:
            rid = body["request_id"]
            self.request_ids.append(rid)
            return {**body, "request_id": f"rid-{len(self.request_ids)}"}
        return body

    def body_of(self, action: Action) -> tuple[str, dict[str, Any]]:
        kind, *values = action
        order = {"card": self.card, "merchant": "Digikala"}
        if kind == "request":
            return "/v1/otp", {**order, "amount": values[0]}
        if kind == "verify":  # the latest request id, the first one, or a made-up one
            which = values[0]
            if which in ("latest", "first") and self.request_ids:
                rid = self.request_ids[-1 if which == "latest" else 0]
            else:
                rid = f"made-up-{which}-0123456789abcdef"
            return "/v1/otp/verify", {"request_id": rid, "otp": self.wrong_code()}
        if kind == "otp":
            return "/v1/payments/authorize", {**order, "amount": values[0],
                                              "otp": self.wrong_code()}
        assert kind == "static"
        return "/v1/payments/authorize", {**order, "amount": values[0],
                                          "static_password": values[1]}

    async def do(self, action: Action) -> Step:
        if action[0] == "wait":
            self.now += timedelta(seconds=action[1])
            return Step((0, None), {}, {}, {}, 0)
        path, body = self.body_of(action)
        metrics_before, commands_before = metric_samples(), self.commandstats()
        digests_before, renders_before = Counter(self.digests), self.renders
        response = await self.client.post(path, data=json.dumps(body), headers=HEADERS)
        answer = (response.status, self.normalised(await response.json()))
        return Step(answer, delta(metric_samples(), metrics_before),
                    delta(self.commandstats(), commands_before),
                    delta(self.digests, digests_before), self.renders - renders_before)


@dataclass
class Bank:
    """The bank's store (our own redis-server) and HTTP API; `attack` runs a sequence of
    requests for one card, on the same fresh state for every card."""

    client: TestClient  # type: ignore[type-arg]
    app: App
    redis: redis.Redis
    holder: dict[str, Attacker]

    async def reset(self, spent_today: int) -> None:
        self.redis.flushdb()
        store, hasher = self.app.store, self.app.hasher
        for number in (CARD, DISABLED, BLOCKED):
            await admin.card_add(store, hasher, number, MOBILE, "credit", STATIC_PW, T0)
        await admin.card_action(store, hasher, DISABLED, "disable", T0)
        await admin.card_action(store, hasher, BLOCKED, "block", T0)
        if spent_today:  # the real card's owner paid with the static password this morning
            paid = await self.app.otp.authorize(CARD, spent_today, "Bakery", None, STATIC_PW,
                                                T0 - timedelta(hours=2))
            assert paid == (True, "")

    async def attack(self, kind: str, actions: list[Action], spent_today: int = 0) -> list[Step]:
        await self.reset(spent_today)
        attacker = Attacker(self.client, self.app, self.redis, KINDS[kind])
        self.holder["attacker"] = attacker
        with self._watching(attacker):
            return [await attacker.do(action) for action in actions]

    @contextmanager
    def _watching(self, attacker: Attacker) -> Iterator[None]:
        """Count the keyed hashes (by label) and the reply texts rendered."""
        hasher = self.app.hasher
        digest, render = hasher.digest, Templates.render

        def counting_digest(label: str, *parts: str) -> str:
            attacker.digests[label] += 1
            return digest(label, *parts)

        def counting_render(templates: Templates, *args: Any, **values: Any) -> str:
            attacker.renders += 1
            return render(templates, *args, **values)

        with mock.patch.object(hasher, "digest", counting_digest), \
                mock.patch.object(Templates, "render", counting_render):
            yield


@pytest.fixture
async def bank(redis_url: str) -> AsyncIterator[Bank]:
    app = build_app(make_settings(redis_url))
    await app.store.load_scripts()
    holder: dict[str, Attacker] = {}

    async def health() -> dict[str, Any]:
        return {"store": True}

    # through a gateway's outbox (bound to no SMSC: nothing leaves), as `smsgw run` does:
    # the real card's SMS is made durable before the 202, so a card without one must
    # cost the same store work (the decoy row)
    gateway = Gateway(app, SmppClient.from_settings(app.settings))

    async def deliver(messages: list[Outbound], decoys: list[Outbound]) -> None:
        await gateway.deliver(messages, decoys)
        holder["attacker"].sent.extend(messages)

    client = TestClient(TestServer(make_app(app.otp, KEY, deliver,
                                            lambda: holder["attacker"].now, health)))
    await client.start_server()
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    bank = Bank(client, app, connection, holder)
    await bank.attack("unknown", SEQUENCE)  # warm up: connections opened, scripts loaded
    yield bank
    connection.close()
    await client.close()
    await app.close()


NEAR = LIMIT - 990_000 + 1  # within the day's limit only for a card that paid nothing today
SEQUENCE: list[Action] = [
    ("request", 1_500_000),
    ("request", 1_500_000),              # inside the resend gap: 429
    *[("verify", "latest")] * 4,         # wrong, wrong, too_many_attempts, too_many_attempts
    *[("verify", "a")] * 4,              # a made-up id: the same
    ("otp", 1_500_000),
    ("wait", 61),
    ("request", 2_000_000),
    ("verify", "first"),                 # replaced by the newer request: expired
    ("verify", "latest"),
    *[("otp", 2_000_000)] * 3,
    ("wait", 130),
    ("verify", "latest"),
    ("verify", "b"),
    ("static", 1000, "wrong-1"),          # within the limit
    ("static", NEAR, "wrong-2"),          # near it (the real card paid 990,000 today)
    ("static", LIMIT + 1, "wrong-3"),     # beyond it
    ("static", LIMIT + 1, "wrong-4"),
    ("static", 1000, "wrong-5"),
]


def answers(steps: list[Step]) -> list[tuple[tuple[int, Any], dict[str, int]]]:
    return [(step.answer, step.metrics) for step in steps]


def work(steps: list[Step]) -> list[tuple[dict[str, int], dict[str, int], int]]:
    return [(step.commands, step.digests, step.renders) for step in steps]


async def test_the_attacker_sees_the_same_for_every_kind_of_card(bank: Bank) -> None:
    real = await bank.attack("real", SEQUENCE, spent_today=990_000)
    assert [step.answer[0] for step in real if step.answer[0]] == [
        202, 429, *[200] * 9, 202, *[200] * 5, *[200] * 7]
    assert [step.answer[1]["reason"] for step in real[2:10]] == [
        "wrong_code", "wrong_code", "too_many_attempts", "too_many_attempts"] * 2
    assert {step.answer[1]["reason"] for step in real[-5:]} == {"declined"}
    for kind in ("unknown", "foreign", "disabled", "blocked"):
        assert answers(await bank.attack(kind, SEQUENCE)) == answers(real), kind


async def test_the_work_is_the_same_for_every_kind_of_card(bank: Bank) -> None:
    real = await bank.attack("real", SEQUENCE, spent_today=990_000)
    assert any(step.commands for step in real)  # commandstats does count the work
    assert [sms.to for sms in bank.holder["attacker"].sent] == [MOBILE, MOBILE]
    for kind in ("unknown", "foreign", "disabled", "blocked"):
        steps = await bank.attack(kind, SEQUENCE)
        for number, (theirs, ours) in enumerate(zip(work(steps), work(real), strict=True)):
            assert theirs == ours, (kind, number, SEQUENCE[number])
        assert bank.holder["attacker"].sent == []  # no SMS to anyone


async def test_a_wrong_static_password_never_says_otp_required(bank: Bank) -> None:
    """Near the daily limit, a wrong password used to answer otp_required (the card
    exists, and paid that much today), and counted no strike."""
    steps = await bank.attack("real", [("static", NEAR, "wrong-1"),
                                       ("static", LIMIT + 1, "wrong-2"),
                                       ("static", LIMIT + 1, "wrong-3"),
                                       ("static", 1000, STATIC_PW)], spent_today=990_000)
    assert [step.answer for step in steps] == [
        (200, {"approved": False, "reason": "declined"})] * 4  # 3 strikes: closed today


async def test_the_right_static_password_alone_reaches_the_limit(bank: Bank) -> None:
    steps = await bank.attack("real", [("static", NEAR, STATIC_PW),
                                       ("static", 1000, "wrong-1"),
                                       ("static", 1000, STATIC_PW)], spent_today=990_000)
    assert [step.answer[1]["reason"] for step in steps] == ["otp_required", "declined", ""]
    for kind in ("disabled", "blocked"):  # their own right password tells nothing either
        steps = await bank.attack(kind, [("static", NEAR, STATIC_PW),
                                         ("static", 1000, STATIC_PW)])
        assert [step.answer[1]["reason"] for step in steps] == ["declined", "declined"]


async def test_made_up_request_ids_run_out_like_silent_ones(bank: Bank) -> None:
    steps = await bank.attack("unknown", [("request", 5000), *[("verify", "latest")] * 4,
                                          *[("verify", "x")] * 4])
    reasons = [step.answer[1]["reason"] for step in steps[1:]]
    assert reasons == ["wrong_code", "wrong_code", "too_many_attempts",
                       "too_many_attempts"] * 2


async def test_metrics_count_silent_and_issued_requests_as_one(bank: Bank) -> None:
    for kind in ("real", "unknown"):
        (step,) = await bank.attack(kind, [("request", 5000)])
        assert step.metrics == {
            'smsgw_otp_events_total{"event": "accepted"}': 1,
            'smsgw_http_request_seconds_count{"route": "/v1/otp", "status": "202"}': 1}
    text = generate_latest().decode()
    assert 'event="silent"' not in text and 'event="issued"' not in text


AMOUNTS = st.sampled_from([1000, NEAR, LIMIT, LIMIT + 1, 1_500_000])
ACTIONS = st.one_of(
    st.tuples(st.just("request"), AMOUNTS),
    st.tuples(st.just("verify"), st.sampled_from(["latest", "first", "a", "b"])),
    st.tuples(st.just("otp"), AMOUNTS),
    st.tuples(st.just("static"), AMOUNTS,  # the attacker lacks the password ("": a 400)
              st.sampled_from(["wrong-1", "Static-pw", ""])),
    st.tuples(st.just("wait"), st.sampled_from([1, 30, 61, 121, 3601])),
)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTIONS, min_size=1, max_size=8),
       other=st.sampled_from(["unknown", "foreign", "disabled", "blocked"]),
       spent_today=st.sampled_from([0, 990_000, LIMIT]))
async def test_no_sequence_of_requests_tells_a_real_card_from_another(
        bank: Bank, actions: list[Action], other: str, spent_today: int) -> None:
    tried("card existence: answers, metrics and work")
    real = await bank.attack("real", actions, spent_today=spent_today)
    theirs = await bank.attack(other, actions)
    assert answers(theirs) == answers(real)
    assert work(theirs) == work(real)


def metrics_keyed_app(app: App, metrics_key: str) -> Any:
    async def health() -> dict[str, Any]:
        return {"store": True}

    return make_app(app.otp, KEY, dropped, lambda: T0, health, metrics_key=metrics_key)


@pytest.mark.parametrize("metrics_key, authorization, status", [
    ("m-key", None, 401), ("m-key", "Bearer wrong", 401), ("m-key", f"Bearer {KEY}", 401),
    ("m-key", "m-key", 401), ("m-key", "Bearer m-key", 200), ("", None, 200),
])
async def test_metrics_behind_the_metrics_key(redis_url: str, metrics_key: str,
                                              authorization: str | None, status: int) -> None:
    app = build_app(make_settings(redis_url))
    client = TestClient(TestServer(metrics_keyed_app(app, metrics_key)))
    await client.start_server()
    try:
        headers = {"Authorization": authorization} if authorization else {}
        response = await client.get("/metrics", headers=headers)
        assert response.status == status
        text = await response.text()
        assert ("smsgw_otp_events_total" in text) == (status == 200)
        assert (await client.get("/healthz")).status == 200  # liveness stays open
    finally:
        await client.close()
        await app.close()


def test_metrics_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_HTTP_METRICS_KEY", "from-env")
    assert make_settings().http.metrics_key == "from-env"



@pytest.fixture
async def metrics_client(redis_url: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = build_app(make_settings(redis_url))
    client = TestClient(TestServer(metrics_keyed_app(app, "m-key")))
    await client.start_server()
    yield client
    await client.close()
    await app.close()


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(authorization=st.one_of(
    header_text, header_text.map(lambda text: "Bearer " + text),
    st.sampled_from(["Bearer m-key ", "bearer m-key", "Bearer  m-key", "Bearer m-ke",
                     "Bearer m-key\t", "Basic m-key", f"Bearer {KEY}", "m-key"])))
async def test_only_the_metrics_key_opens_the_metrics(
        metrics_client: TestClient, authorization: str) -> None:  # type: ignore[type-arg]
    tried("metrics behind the metrics key")
    response = await metrics_client.get("/metrics", headers={"Authorization": authorization})
    # (HTTP trims a header's surrounding blanks: "Bearer m-key " arrives as the key)
    opens = authorization.strip(" \t") == "Bearer m-key"
    assert response.status == (200 if opens else 401)
