"""Hostile input, fuzzed: every input gets a clear answer or error and changes nothing.

Inputs tried per run (hypothesis max_examples): message-log lines 1,500; subscriber CSV
files 600; HTTP bodies 600; PIN guesses and OTP guesses as written below. The SMS parser
and the PDU decoder have their own targets in test_parsing.py and test_codec.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.http import make_app
from smsgw.messages import Inbound
from smsgw.msglog import BadLine, LogRecord, read_records
from smsgw.subscribers import BadInputFile, parse_subscriber_csv
from tests.conftest import add_subscribers, make_settings
from tests.test_otp_rules import CARD, MOBILE, T0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=12)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(max_size=300), json_values.map(json.dumps),
                 st.fixed_dictionaries({"ts": st.text(max_size=30), "from": json_values,
                                        "to": json_values, "text": json_values}).map(json.dumps)))
def test_message_log_reader_answers_every_line(line: str) -> None:
    for item in read_records([line]):
        assert isinstance(item, LogRecord | BadLine)
        if isinstance(item, BadLine):
            assert item.line == 1 and item.reason


@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="0123456789,+-.abcprepaidpostpaidfaen۰۹ \"\n\x00",
                                 max_size=14), min_size=0, max_size=6), max_size=6))
def test_subscriber_csv_is_all_or_nothing(rows: list[list[str]]) -> None:
    content = "msisdn,plan,balance,bill,language\n" + "\n".join(",".join(r) for r in rows)
    try:
        loaded = parse_subscriber_csv(content)
    except BadInputFile as exc:
        assert exc.problems and all(line >= 1 and why for line, why in exc.problems)
        return
    for row in loaded:
        assert row.msisdn.startswith("98") and row.plan in ("prepaid", "postpaid")
        assert row.balance >= 0 and row.language in ("fa", "en")


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[TestClient, App, list[Any]]]:  # type: ignore[type-arg]
    app = build_app(make_settings(redis_url))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    sent: list[Any] = []

    async def health() -> dict[str, Any]:
        return {"store": True}

    client = TestClient(TestServer(make_app(app.otp, "k", sent.extend, lambda: T0, health)))
    await client.start_server()
    yield client, app, sent
    await client.close()
    await app.close()


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/otp", "/v1/otp/verify", "/v1/payments/authorize"]),
       body=st.one_of(json_values, st.fixed_dictionaries(
           {}, optional={"card": json_values, "amount": json_values, "merchant": json_values,
                         "otp": json_values, "static_password": json_values,
                         "request_id": json_values})))
async def test_hostile_http_bodies(api, path: str, body: Any) -> None:  # type: ignore[no-untyped-def]
    client, _app, sent = api
    response = await client.post(path, data=json.dumps(body),
                                 headers={"Authorization": "Bearer k",
                                          "Content-Type": "application/json"})
    assert response.status in (200, 202, 400, 429)
    answer = await response.json()
    if response.status == 400:
        assert answer["error"] == "bad_request" and answer["reason"]
    assert all(sms.to == MOBILE for sms in sent)  # nothing ever goes anywhere else


async def test_pin_brute_force_across_many_senders_is_stopped(redis_url: str) -> None:
    app = build_app(make_settings(redis_url))
    victims = [f"98936{n:07d}" for n in range(50)]
    await add_subscribers(app.store, ("989351234567", "prepaid", 0, 0),
                          *[(v, "prepaid", 100_000, 0) for v in victims])
    for v in victims:
        await app.pipeline.handle(Inbound(v, "1112", "09351234567:1000:73915", T0))
    guesses = 0
    for v in victims:  # an attacker who can send from each number tries 20 PINs
        for pin in range(10_000, 10_020):
            kinds = [r.kind for r in await app.pipeline.handle(
                Inbound(v, "1112", f"09351234567:1000:{pin}", T0))]
            guesses += kinds == ["transfer.wrong_pin"] or kinds == ["transfer.blocked_now"]
    assert guesses == 50 * 3  # 3 real tries per number, then only "blocked"
    assert int((await app.store.subscriber("989351234567"))["balance"]) == 50 * 1000
    await app.close()


async def test_otp_guessing_is_bounded_by_attempts_and_rate_limits(redis_url: str) -> None:
    app = build_app(make_settings(redis_url))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    issued = 0
    for minute in range(60):  # an hour of trying: a new OTP whenever allowed, 10 guesses each
        at = T0 + timedelta(minutes=minute)
        answer = await app.otp.request_for_payment(CARD, 5_000_000, "Shop", at)
        if not answer.accepted:
            continue
        issued += 1
        reasons = [(await app.otp.verify(answer.request_id, f"{guess:06d}", at))[1]
                   for guess in range(10)]
        real_code = answer.replies[0].secret
        if real_code is not None and real_code in {f"{g:06d}" for g in range(3)}:
            continue  # a one-in-a-million draw: the guess was right
        assert reasons == ["wrong_code"] * 2 + ["too_many_attempts"] * 8
    assert issued == 5  # 5 OTPs an hour: at most 15 codes compared, of 10^6
    await app.close()
