"""Idempotency-Key on POST /v1/otp and POST /v1/payments/authorize (interfaces.md), on a
real Redis, the embedded store and a cluster (where the key's record and the card's keys
sit in different slots)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from smsgw import admin
from smsgw.app import build_app
from smsgw.transport.idempotency import Idempotency
from tests.conftest import make_settings
from tests.test_http_api import AUTH, serving
from tests.test_http_api import Api as HttpApi
from tests.test_otp_rules import CARD, MOBILE, T0, UNKNOWN, otp_of

ORDER = {"card": CARD, "amount": 1_500_000, "merchant": "Digikala"}


class Api(HttpApi):
    async def send(self, path: str, body: Any, key: str | None = None
                   ) -> tuple[int, Any, dict[str, str]]:
        """POST with the key (if any): status, body and headers."""
        headers = AUTH if key is None else {**AUTH, "Idempotency-Key": key}
        response = await self.client.post(path, data=json.dumps(body), headers=headers)
        return response.status, await response.json(), dict(response.headers)


@pytest.fixture
async def api(any_store_url: str) -> AsyncIterator[Api]:
    app = build_app(make_settings(any_store_url))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "credit", "static-pw", T0)

    async def health() -> dict[str, Any]:
        return {"store": True}

    async with serving(app, Api, health,
                       idempotency=Idempotency(app.store, app.hasher, wait_seconds=2.0)) as api:
        yield api
    await app.close()


async def test_a_retry_gets_the_first_answer_and_no_second_sms(api: Api) -> None:
    first = await api.send("/v1/otp", ORDER, key="order-1")
    again = await api.send("/v1/otp", ORDER, key="order-1")
    assert first[0] == again[0] == 202 and first[1] == again[1]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert [sms.to for sms in api.sent] == [MOBILE]  # one SMS; the OTP is not replaced
    verdict = await api.send("/v1/otp/verify", {"request_id": first[1]["request_id"],
                                                "otp": otp_of(api.sent[0])})
    assert verdict[1] == {"valid": True}


async def test_the_same_body_in_another_order_is_the_same_request(api: Api) -> None:
    first = await api.send("/v1/otp", ORDER, key="k")
    reordered = dict(reversed(list(ORDER.items())))
    assert (await api.send("/v1/otp", reordered, key="k"))[1] == first[1]


async def test_another_body_or_route_with_the_key_gets_422(api: Api) -> None:
    await api.send("/v1/otp", ORDER, key="k")
    for path, body in (("/v1/otp", {**ORDER, "amount": 1_500_001}),
                       ("/v1/payments/authorize", {**ORDER, "static_password": "x"})):
        status, answer, _ = await api.send(path, body, key="k")
        assert status == 422 and answer["error"] == "idempotency_key_reused"
    assert len(api.sent) == 1


async def test_a_key_reused_across_a_real_and_an_unknown_card_behaves_the_same(
        api: Api) -> None:
    seen = []
    for first, second in ((CARD, UNKNOWN), (UNKNOWN, CARD)):
        key = f"shared-{first}"
        status, body, _ = await api.send("/v1/otp", {**ORDER, "card": first}, key=key)
        replay = await api.send("/v1/otp", {**ORDER, "card": first}, key=key)
        reused = await api.send("/v1/otp", {**ORDER, "card": second}, key=key)
        seen.append((status, set(body), replay[0], set(replay[1]), reused[0], reused[1],
                     replay[2].get("Idempotent-Replayed")))
    assert seen[0] == seen[1]


async def test_authorisation_once_and_no_second_strike(api: Api) -> None:
    pay = {**ORDER, "amount": 1000, "static_password": "static-pw"}
    answers = [await api.send("/v1/payments/authorize", pay, key="pay-1") for _ in range(3)]
    assert {(a[0], json.dumps(a[1])) for a in answers} == {(200, json.dumps(
        {"approved": True, "reason": ""}))}
    wrong = {**pay, "static_password": "wrong"}
    for _ in range(3):  # one strike, however often it is retried
        assert (await api.send("/v1/payments/authorize", wrong, key="pay-2"))[1] == {
            "approved": False, "reason": "declined"}
    assert (await api.send("/v1/payments/authorize", pay))[1]["approved"]  # not locked
    history = await admin.card_history(api.app.store, api.app.hasher, CARD)
    assert [entry["kind"] for entry in history].count("paid_static") == 2


async def test_concurrent_duplicates_do_the_work_once(api: Api) -> None:
    answers = await asyncio.gather(*(api.send("/v1/otp", ORDER, key="race") for _ in range(5)))
    assert {answer[0] for answer in answers} == {202}
    assert len({answer[1]["request_id"] for answer in answers}) == 1
    assert len(api.sent) == 1
    pay = {**ORDER, "otp": otp_of(api.sent[0])}
    paid = await asyncio.gather(*(api.send("/v1/payments/authorize", pay, key="race-pay")
                                  for _ in range(4)))
    assert [answer[1] for answer in paid] == [{"approved": True, "reason": ""}] * 4


async def test_a_refused_answer_is_not_kept(api: Api) -> None:
    """429 gives the key back: a retry after the wait does the work."""
    await api.send("/v1/otp", ORDER)
    status, _, _ = await api.send("/v1/otp", ORDER, key="later")
    assert status == 429
    api.now = T0.replace(minute=T0.minute + 2)
    status, _, _ = await api.send("/v1/otp", ORDER, key="later")
    assert status == 202 and len(api.sent) == 2


@pytest.mark.parametrize("key", ["", "x" * 256])
async def test_a_key_beyond_its_bounds_gets_400(api: Api, key: str) -> None:
    status, body, _ = await api.send("/v1/otp", ORDER, key=key)
    assert status == 400 and "Idempotency-Key" in body["reason"]
    assert api.sent == []


async def test_any_text_up_to_255_characters_is_a_key(api: Api) -> None:
    for key in ("a" * 255, "سفارش ۱۲", "\t spaces and : colons ,"):
        status, _, _ = await api.send("/v1/otp", {**ORDER, "merchant": key[:10]}, key=key)
        api.now = api.now.replace(minute=api.now.minute + 2)
        assert status == 202, key


async def test_a_request_still_in_progress_gets_409(api: Api) -> None:
    """A process that died between reserving and finishing: its lease holds the key."""
    hasher, store = api.app.hasher, api.app.store
    digest = hasher.digest("idempotency-key", b"stuck".hex())
    fingerprint = hasher.digest("idempotency-request", "/v1/otp", json.dumps(
        ORDER, sort_keys=True, separators=(",", ":")))
    assert (await store.reserve_idempotency_key(digest, fingerprint, "dead", 60))[0] == \
        "reserved"
    status, body, headers = await api.send("/v1/otp", ORDER, key="stuck")
    assert status == 409 and body["error"] == "in_progress" and headers["Retry-After"]
    assert api.sent == []
