"""Breaks found by an outside attack on the two HTTP surfaces (the payment API and the
operator console), each with the test that showed it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from smsgw.app import App, build_app
from smsgw.console import people as people_module
from smsgw.console.people import MAX_FAILURES, People, SignIn
from tests.conftest import make_settings
from tests.console_helpers import PASSWORDS, seed
from tests.deliveries import dropped
from tests.test_http_api import AUTH, KEY, Api, api
from tests.test_otp_rules import CARD, T0
from tests.test_webhooks import Receiver, bank, deliver_all, receiver

__all__ = ["api", "bank", "receiver"]  # fixtures


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(people_module, "SCRYPT_LOG2_N", 10)


@pytest.fixture
async def console_app(store_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(store_url))
    await seed(application)
    yield application
    await application.close()


async def test_concurrent_guesses_get_no_more_than_five_tries(console_app: App) -> None:
    """40 wrong passwords sent at once, and the right one among them: each read the lock
    before any had failed, so all were checked (and the right one let in after 15 wrong)."""
    people = People(console_app.store)
    guesses = [people.sign_in("cara", f"guess-{n}-wrong") for n in range(40)]
    outcomes = await asyncio.gather(*guesses, people.sign_in("cara", PASSWORDS["cara"]))
    checked_and_wrong = [o for o, _ in outcomes[:-1] if o is SignIn.FAILED]
    assert len(checked_and_wrong) <= MAX_FAILURES - 1  # the 5th failure answers "locked"
    assert outcomes[-1][0] is SignIn.LOCKED  # the 41st attempt: not checked at all
    assert (await people.sign_in("cara", PASSWORDS["cara"]))[0] is SignIn.LOCKED


async def test_sign_ins_do_not_stall_the_process(console_app: App,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A password check costs ~0.1 s of CPU; run on the event loop, 60 sign-ins by a
    stranger held GET /healthz (and every payment API call) for over 6 s."""
    original = people_module.password_matches

    def slow(password: str, encoded: str) -> bool:
        time.sleep(0.5)  # as a production scrypt, which releases the GIL
        return original(password, encoded)

    monkeypatch.setattr(people_module, "password_matches", slow)
    people = People(console_app.store)
    signing_in = asyncio.gather(*(people.sign_in(f"stranger-{n}", "x") for n in range(3)))
    started = time.perf_counter()
    await asyncio.sleep(0.01)
    # one check on the event loop would hold it 0.5 s; the margin is for a busy box (a
    # bound of 0.15 failed once beside other work: 0.17 s)
    assert time.perf_counter() - started < 0.3
    await signing_in


async def test_a_two_part_otp_sms_is_delivered_once(bank: App, receiver: Receiver) -> None:
    """A Persian payment OTP is two SMS parts, each with its own receipt: the payment
    system got otp.delivered twice (two event ids: no receiver could drop the repeat)."""
    answer = await bank.otp.request_for_payment(CARD, 1_500_000, "Digikala", T0)
    events = bank.otp.events
    await events.sent(answer.request_id, "smsc-1")
    await events.sent(answer.request_id, "smsc-1")  # the SMS accepted again (a re-send)
    await events.receipt(answer.request_id, "DELIVRD", "000")  # part 1
    await events.receipt(answer.request_id, "DELIVRD", "000")  # part 2
    await events.receipt(answer.request_id, "UNDELIV", "000")  # a late, contrary part
    await bank.otp.verify(answer.request_id, answer.replies[0].secret or "", T0)
    await deliver_all(bank, receiver.url, 3, receiver)
    assert [e["type"] for e in receiver.events()] == ["otp.sent", "otp.delivered",
                                                      "otp.verified"]


@pytest.mark.parametrize("raw_key", [b"\xff\xfe", b"order-\x80-1", b"\xc3"])
async def test_an_idempotency_key_that_is_not_utf8_gets_a_clear_400(
        api: Api, raw_key: bytes) -> None:
    """Undecodable bytes were taken as a key (as surrogates): two different byte strings
    could never be told apart by the caller's own logs, and the answer was a 202."""
    body = json.dumps({"card": CARD, "amount": 1000, "merchant": "M"}).encode()
    head = (b"POST /v1/otp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nIdempotency-Key: %s\r\n\r\n" % (len(body), raw_key))
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(head + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer
    assert b"Idempotency-Key" in rest.partition(b"\r\n\r\n")[2]
    assert api.sent == []


async def test_two_idempotency_keys_get_400(api: Api) -> None:
    response = await api.client.post(
        "/v1/otp", data=json.dumps({"card": CARD, "amount": 1000, "merchant": "M"}),
        headers=[*AUTH.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
    assert response.status == 400 and api.sent == []


async def test_a_wrong_method_or_path_under_v1_gets_a_json_answer(redis_url: str) -> None:
    """The payment system's client parses every /v1 answer as JSON: a method or a path
    the API does not have is answered in JSON too (found by the outside HTTP attack)."""
    from aiohttp.test_utils import TestClient, TestServer

    from smsgw.app import build_app
    from smsgw.core.clock import now
    from smsgw.transport.http_api import make_app
    from tests.conftest import make_settings

    app = build_app(make_settings(redis_url))

    async def health() -> dict[str, object]:
        return {"store": True}

    client = TestClient(TestServer(make_app(app.otp, "k", dropped, now, health)))
    await client.start_server()
    try:
        auth = {"Authorization": "Bearer k"}
        wrong_method = await client.get("/v1/otp", headers=auth)
        assert wrong_method.status == 405 and "POST" in wrong_method.headers["Allow"]
        assert (await wrong_method.json())["error"] == "method_not_allowed"
        missing = await client.post("/v1/otp/", headers=auth)
        assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    finally:
        await client.close()
        await app.close()
