"""Hostile input, fuzzed: every input gets a clear answer or error and changes nothing.

Inputs tried per run (hypothesis max_examples): message-log lines 1,500; subscriber CSV
files 600 (and 300 strict-row files); HTTP bodies 600; PIN and OTP guesses as below. The SMS parser
and the PDU decoder have their own targets in test_parsing.py and test_codec.py.
"""

from __future__ import annotations

import csv
import io
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
from smsgw.core.money import MONEY_CEILING
from smsgw.core.text import to_persian_digits
from smsgw.messages import Inbound
from smsgw.subscribers import BadInputFile, parse_subscriber_csv
from smsgw.transport.http_api import make_app
from smsgw.transport.msglog import BadLine, LoggedMessage, read_records
from tests.attacks import tried
from tests.conftest import add_subscribers, make_settings
from tests.deliveries import kept_in
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
        assert isinstance(item, LoggedMessage | BadLine)
        if isinstance(item, BadLine):
            assert item.line == 1 and item.reason


@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="0123456789,+-.abcprepaidpostpaidfaen۰۹٬ \"\n\x00",
                                 max_size=14), min_size=0, max_size=6), max_size=6))
def test_subscriber_csv_is_all_or_nothing(rows: list[list[str]]) -> None:
    tried("subscriber file: all rows or none")
    content = "msisdn,plan,balance,bill,language\n" + "\n".join(",".join(r) for r in rows)
    try:
        loaded = parse_subscriber_csv(content)
    except BadInputFile as exc:
        assert exc.problems and all(line >= 1 and why for line, why in exc.problems)
        return
    for row in loaded:
        assert row.msisdn.startswith("98") and row.plan in ("prepaid", "postpaid")
        assert row.balance >= 0 and row.language in ("fa", "en")
        assert row.balance <= MONEY_CEILING and -MONEY_CEILING <= row.bill <= MONEY_CEILING
    records = [record for record in csv.reader(io.StringIO(content, newline="")) if record]
    assert len(loaded) == len(records) - 1 and all(len(r) == 5 for r in records)  # none short


def _written(amount: int, form: str) -> str:
    """An amount in one of the forms people write."""
    text = f"{amount:,}" if form.startswith("grouped") else str(amount)
    if form.endswith("persian"):
        text = to_persian_digits(text).replace(",", "٬")
    return f'"{text}"' if "," in text else text


subscriber_rows = st.tuples(
    st.integers(0, 9_999_999).map(lambda n: f"0936{n:07d}"),
    st.sampled_from(["prepaid", "postpaid", "PrePaid"]),
    st.integers(0, MONEY_CEILING), st.integers(-MONEY_CEILING, MONEY_CEILING),
    st.sampled_from(["grouped", "plain", "grouped-persian", "plain-persian"]),
    st.sampled_from(["fa", "en", ""])).map(
        # a line carries only its plan's amount: a prepaid line's bill, or a postpaid
        # line's balance, is a bad row of its own (tests/test_attack12.py)
        lambda r: (r[0], r[1], r[2], 0, *r[4:]) if r[1].lower() == "prepaid"
        else (r[0], r[1], 0, *r[3:]))
spoilers = st.sampled_from([
    ("drop the last field", lambda f: f[:-1]), ("drop two fields", lambda f: f[:3]),
    ("an extra field", lambda f: [*f, "x"]),
    ("the plan's amount empty", lambda f: [f[0], f[1], "", "", f[4]]),
    ("a mistyped group", lambda f: [f[0], f[1], '"50,00,0"', f[3], f[4]]),
    ("beyond the ceiling", lambda f: [f[0], f[1], str(MONEY_CEILING + 1), f[3], f[4]]),
    ("a negative balance", lambda f: [f[0], f[1], "-1", f[3], f[4]]),
    ("a decimal bill", lambda f: [f[0], f[1], f[2], "1.5", f[4]]),
    ("an empty number", lambda f: ["", *f[1:]]),
    ("a short number", lambda f: ["0936123", *f[1:]]),
    ("a bad plan", lambda f: [f[0], "gold", *f[2:]]),
    ("a bad language", lambda f: [*f[:4], "de"])])


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(subscriber_rows, min_size=1, max_size=8, unique_by=lambda r: r[0]),
       spoiled=st.integers(0, 7), spoiler=spoilers)
def test_subscriber_file_loads_every_written_form_and_one_bad_row_loads_nothing(
        rows: list[tuple[str, str, int, int, str, str]], spoiled: int,
        spoiler: tuple[str, Any]) -> None:
    tried("subscriber file: strict rows")
    lines = [[m, plan, _written(balance, form), _written(bill, form), lang]
             for m, plan, balance, bill, form, lang in rows]
    header = "msisdn,plan,balance,bill,language"
    loaded = parse_subscriber_csv("\n".join([header, *(",".join(f) for f in lines)]))
    assert [(r.msisdn, r.plan, r.balance, r.bill, r.language) for r in loaded] == [
        ("98" + m[1:], plan.lower(), balance, bill, lang or "fa")
        for m, plan, balance, bill, _form, lang in rows]

    spoiled %= len(lines)
    what, spoil = spoiler
    lines[spoiled] = spoil(lines[spoiled])
    with pytest.raises(BadInputFile) as refused:
        parse_subscriber_csv("\n".join([header, *(",".join(f) for f in lines)]))
    assert [line for line, _ in refused.value.problems] == [spoiled + 2], what


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[TestClient, App, list[Any]]]:  # type: ignore[type-arg]
    app = build_app(make_settings(redis_url))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    sent: list[Any] = []

    async def health() -> dict[str, Any]:
        return {"store": True}

    client = TestClient(TestServer(make_app(app.otp, "k", kept_in(sent), lambda: T0, health)))
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
        await app.router.handle(Inbound(v, "1112", "09351234567:1000:73915", T0))
    guesses = 0
    for v in victims:  # an attacker who can send from each number tries 20 PINs
        for pin in range(10_000, 10_020):
            kinds = [r.kind for r in await app.router.handle(
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
        # the card's wrong codes carry over to each new OTP (NIST SP 800-63B): after the
        # first OTP's three, each new one voids at its first wrong code
        first = issued == 1
        assert reasons == ["wrong_code"] * (2 if first else 0) + ["too_many_attempts"] * (
            8 if first else 10)
    assert issued == 5  # 5 OTPs an hour: at most 3 + 4 = 7 codes compared, of 10^6
    await app.close()
