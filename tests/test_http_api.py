"""The HTTP API: auth, validation, identical answers, rate limits, health and metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.messages import Outbound
from smsgw.transport.http_api import make_app
from tests.conftest import make_settings
from tests.test_otp_rules import BLOCKED, CARD, DISABLED, FOREIGN, MOBILE, T0, UNKNOWN, otp_of

KEY = "test-api-key"
JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {KEY}", **JSON}


@dataclass
class Api:
    client: TestClient  # type: ignore[type-arg]
    app: App
    sent: list[Outbound] = field(default_factory=list)
    now: datetime = T0

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        response = await self.client.post(path, data=data, headers=AUTH if headers is None
                                          else {**JSON, **headers})
        return response.status, await response.json()


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[Api]:
    app = build_app(make_settings(redis_url))
    for number in (CARD, DISABLED, BLOCKED):
        await admin.card_add(app.store, app.hasher, number, MOBILE, "credit", "static-pw", T0)
    await admin.card_action(app.store, app.hasher, DISABLED, "disable", T0)
    await admin.card_action(app.store, app.hasher, BLOCKED, "block", T0)

    async def health() -> dict[str, Any]:
        return {"store": await app.store.ping(), "smsc_bound": False}

    async with serving(app, Api, health) as api:
        yield api
    await app.close()


ApiT = TypeVar("ApiT", bound=Api)


@asynccontextmanager
async def serving(app: App, kind: type[ApiT], health: Callable[[], Awaitable[dict[str, Any]]],
                  **options: Any) -> AsyncIterator[ApiT]:
    """The HTTP API of `app` on a test server, its SMS and clock in the client `kind`."""
    holder: dict[str, ApiT] = {}

    async def deliver(messages: list[Outbound], _: list[Outbound]) -> None:
        holder["api"].sent.extend(messages)

    web_app = make_app(app.otp, KEY, deliver,
                       lambda: holder["api"].now, health, **options)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    holder["api"] = kind(client, app)
    try:
        yield holder["api"]
    finally:
        await client.close()


ORDER = {"card": CARD, "amount": 1_500_000, "merchant": "Digikala"}


async def test_request_verify_authorize_over_http(api: Api) -> None:
    status, body = await api.post("/v1/otp", ORDER)
    assert status == 202 and set(body) == {"request_id"}
    assert [sms.to for sms in api.sent] == [MOBILE]
    code = otp_of(api.sent[0])
    status, body = await api.post("/v1/payments/authorize", {**ORDER, "otp": code})
    assert (status, body) == (200, {"approved": True, "reason": ""})
    status, body = await api.post("/v1/otp/verify", {"request_id": "x" * 22, "otp": code})
    assert (status, body) == (200, {"valid": False, "reason": "wrong_code"})


async def test_verify_endpoint(api: Api) -> None:
    _, body = await api.post("/v1/otp", ORDER)
    code = otp_of(api.sent[0])
    _, verdict = await api.post("/v1/otp/verify", {"request_id": body["request_id"], "otp": code})
    assert verdict == {"valid": True}
    _, verdict = await api.post("/v1/otp/verify", {"request_id": body["request_id"], "otp": code})
    assert verdict == {"valid": False, "reason": "used"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": KEY}, {"Authorization": "Basic xyz"}])
async def test_without_the_api_key_nothing_happens(api: Api, headers: dict[str, str]) -> None:
    for path, body in (("/v1/otp", ORDER), ("/v1/otp/verify", {"request_id": "a", "otp": "1"}),
                       ("/v1/payments/authorize", {**ORDER, "static_password": "static-pw"})):
        status, answer = await api.post(path, body, headers=headers)
        assert (status, answer) == (401, {"error": "unauthorized"})
    assert api.sent == []
    status, _ = await api.post("/v1/payments/authorize", {**ORDER, "amount": 1000,
                                                          "static_password": "static-pw"})
    assert status == 200
    history = await admin.card_history(api.app.store, api.app.hasher, CARD)
    assert [e["kind"] for e in history].count("paid_static") == 1  # only the authorised call


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[1, 2]", "body must be a JSON object"),
    (b"", "body is not JSON"),
    (b"[" * 100_00, "body is not JSON"),
])
async def test_bodies_that_are_not_json_objects(api: Api, raw: bytes, reason: str) -> None:
    for path in ("/v1/otp", "/v1/otp/verify", "/v1/payments/authorize"):
        status, body = await api.post(path, None, raw=raw)
        assert status == 400 and body["reason"] == reason


@pytest.mark.parametrize("change, reason", [
    ({"card": None}, "'card' must be a string"),
    ({"card": 6279611234567894}, "'card' must be a string"),
    ({"card": "627961123456789"}, "card must be 16 digits"),
    ({"card": "6279611234567895"}, "card number fails the Luhn check"),
    ({"card": "۶۲۷۹۶۱۱۲۳۴۵۶۷۸۹۴"}, "card must be 16 digits"),
    ({"amount": 0}, "'amount' must be positive"),
    ({"amount": -5}, "'amount' must be positive"),
    ({"amount": 1.5}, "'amount' must be an integer number of rials"),
    ({"amount": 1500000.0}, "'amount' must be an integer number of rials"),
    ({"amount": "1500000"}, "'amount' must be an integer number of rials"),
    ({"amount": True}, "'amount' must be an integer number of rials"),
    ({"amount": 10**30}, "'amount' is too large (at most 1000000000000000 rials)"),
    ({"merchant": ""}, "'merchant' must be 1 to 64 characters"),
    ({"merchant": "m" * 65}, "'merchant' must be 1 to 64 characters"),
    ({"merchant": ["a"]}, "'merchant' must be a string"),
])
async def test_bad_fields_get_400_and_change_nothing(api: Api, change: dict[str, Any],
                                                     reason: str) -> None:
    body = {**ORDER, **change}
    if None in change.values():
        body = {k: v for k, v in body.items() if v is not None}
        reason = "missing field 'card'"
    status, answer = await api.post("/v1/otp", body)
    assert (status, answer) == (400, {"error": "bad_request", "reason": reason})
    status, answer = await api.post("/v1/payments/authorize", {**body, "static_password": "pw"})
    assert (status, answer) == (400, {"error": "bad_request", "reason": reason})
    assert api.sent == []
    history = await admin.card_history(api.app.store, api.app.hasher, CARD)
    assert [e["kind"] for e in history] == ["card_add"]


async def test_authorize_needs_exactly_one_secret(api: Api) -> None:
    for extra in ({}, {"otp": "123456", "static_password": "pw"}):
        status, answer = await api.post("/v1/payments/authorize", {**ORDER, **extra})
        assert status == 400 and "exactly one" in answer["reason"]
    status, answer = await api.post("/v1/otp/verify", {"request_id": "abc"})
    assert (status, answer["reason"]) == (400, "missing field 'otp'")
    status, answer = await api.post("/v1/otp/verify", {"request_id": 5, "otp": "1"})
    assert (status, answer["reason"]) == (400, "'request_id' must be a string")


async def test_same_answer_whatever_the_card(api: Api) -> None:
    answers = []
    for card in (CARD, DISABLED, BLOCKED, UNKNOWN, FOREIGN):
        status, body = await api.post("/v1/otp", {**ORDER, "card": card})
        answers.append((status, tuple(sorted(body)), len(body["request_id"])))
        status, body = await api.post("/v1/payments/authorize",
                                      {**ORDER, "card": card, "amount": 1000,
                                       "static_password": "not-it"})
        assert (status, body) == (200, {"approved": False, "reason": "declined"})
    assert len(set(answers)) == 1
    assert [sms.to for sms in api.sent] == [MOBILE]  # only the enabled card's mobile


async def test_rate_limited_requests_say_when_to_try_again(api: Api) -> None:
    assert (await api.post("/v1/otp", ORDER))[0] == 202
    api.now = T0 + timedelta(seconds=15)
    for card in (CARD, UNKNOWN):
        if card == UNKNOWN:
            api.now = T0
            await api.post("/v1/otp", {**ORDER, "card": card})
            api.now = T0 + timedelta(seconds=15)
        response = await api.client.post("/v1/otp", json={**ORDER, "card": card}, headers=AUTH)
        assert response.status == 429
        assert await response.json() == {"error": "rate_limited", "retry_after_seconds": 45}
        assert response.headers["Retry-After"] == "45"


async def test_healthz_and_metrics(api: Api) -> None:
    await api.post("/v1/otp", ORDER)
    health = await api.client.get("/healthz")
    assert health.status == 200 and (await health.json())["store"] is True
    metrics = await (await api.client.get("/metrics")).text()
    assert 'smsgw_otp_events_total{event="accepted"}' in metrics
    assert "smsgw_http_request_seconds_bucket" in metrics
    assert (await api.client.get("/nothing")).status == 404


async def test_oversized_body(api: Api) -> None:
    response = await api.client.post("/v1/otp", data=b"{" + b" " * 20_000 + b"}", headers=AUTH)
    assert response.status == 413
