"""Hostile HTTP bodies on every /v1 route: a 400 (or 413) with a reason, and nothing changes.

Huge integers (a 5,000-digit amount used to be a 500), numbers JSON has no word for (NaN,
Infinity), duplicate keys, lone surrogates, deep nesting, bodies that are not an object,
not UTF-8 or not declared as JSON, bodies over the size limit, and an Authorization
header that is not UTF-8. The store is compared key by key (DUMP) before and after.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.messages import Outbound
from smsgw.transport.http_api import MAX_BODY_BYTES, make_app
from tests.attacks import tried
from tests.conftest import make_settings
from tests.deliveries import kept_in
from tests.test_otp_rules import CARD, MOBILE, T0

KEY = "test-api-key"
JSON = "application/json"
ROUTES = ("/v1/otp", "/v1/otp/verify", "/v1/payments/authorize")
ANSWERS = (200, 202, 400, 401, 413, 422, 429)  # never a 500
ORDER = f'"card": "{CARD}", "merchant": "Digikala"'


@dataclass
class Api:
    client: TestClient  # type: ignore[type-arg]
    app: App
    redis: redis.Redis
    sent: list[Outbound] = field(default_factory=list)

    def snapshot(self) -> dict[str, bytes]:
        return {key: self.redis.dump(key) for key in self.redis.scan_iter(count=1000)}

    async def post(self, path: str, raw: bytes, content_type: str | None = JSON,
                   **headers: str) -> tuple[int, Any]:
        sent = {"Authorization": f"Bearer {KEY}", **headers}
        if content_type is not None:
            sent["Content-Type"] = content_type
        response = await self.client.post(path, data=raw, headers=sent)
        return response.status, await response.json()


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[Api]:
    app = build_app(make_settings(redis_url))
    await admin.card_add(app.store, app.hasher, CARD, MOBILE, "debit", "static-pw", T0)
    sent: list[Outbound] = []

    async def health() -> dict[str, Any]:
        return {"store": True}

    client = TestClient(TestServer(make_app(app.otp, KEY, kept_in(sent), lambda: T0, health)))
    await client.start_server()
    connection = redis.Redis.from_url(redis_url)
    yield Api(client, app, connection, sent)
    connection.close()
    await client.close()
    await app.close()


def body(fields: str) -> bytes:
    return ("{" + fields + "}").encode()


DIGITS_5000 = "9" * 5000
HOSTILE: list[tuple[str, bytes, str | None]] = [  # (what, body, reason on /v1/otp or None)
    ("5,000-digit amount", body(f'{ORDER}, "amount": {DIGITS_5000}'),
     "'amount' is too large (at most 1000000000000000 rials)"),
    ("10**400", body(f'{ORDER}, "amount": 1{"0" * 400}'),
     "'amount' is too large (at most 1000000000000000 rials)"),
    ("-10**5000", body(f'{ORDER}, "amount": -1{"0" * 5000}'), "'amount' must be positive"),
    ("1e400", body(f'{ORDER}, "amount": 1e400'), "'amount' must be an integer number of rials"),
    ("NaN", body(f'{ORDER}, "amount": NaN'), "NaN is not JSON"),
    ("Infinity", body(f'{ORDER}, "amount": Infinity'), "Infinity is not JSON"),
    ("-Infinity", body(f'{ORDER}, "amount": -Infinity'), "-Infinity is not JSON"),
    ("duplicate key", body(f'{ORDER}, "amount": 1000, "amount": 1500000'),
     "body has a duplicate key"),
    ("lone surrogate", body(f'"card": "{CARD}", "amount": 1000, "merchant": "\\ud800"'),
     "'merchant' must be valid Unicode text"),
    ("surrogate as UTF-8 bytes", body(f'{ORDER}, "amount": 1000').replace(
        b"Digikala", b"Digi\xed\xa0\x80"), "body is not JSON"),
    ("not UTF-8", body(f'{ORDER}, "amount": 1000').replace(b"Digikala", b"Digi\xff"),
     "body is not JSON"),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + body(f'{ORDER}, "amount": 1000'), "body is not JSON"),
    ("UTF-16", ("{" + ORDER + ', "amount": 1000}').encode("utf-16"), "body is not JSON"),
    ("deep arrays", b"[" * 15_000 + b"]" * 15, "body is not JSON"),
    ("deep objects", b'{"a":' * 2500 + b"1" + b"}" * 2500, "body is not JSON"),
    ("deep in a field", body(f'{ORDER}, "amount": ' + "[" * 5000 + "]" * 5000),
     "body is not JSON"),
    ("a string", b'"hello"', "body must be a JSON object"),
    ("a number", b"12", "body must be a JSON object"),
    ("null", b"null", "body must be a JSON object"),
    ("an array", b"[]", "body must be a JSON object"),
    ("empty", b"", "body is not JSON"),
    ("two documents", body(f'{ORDER}, "amount": 1000') * 2, "body is not JSON"),
]


@pytest.mark.parametrize("what, raw, reason", HOSTILE, ids=[case[0] for case in HOSTILE])
async def test_hostile_bodies_get_400_with_a_reason_and_change_nothing(
        api: Api, what: str, raw: bytes, reason: str | None) -> None:
    before = api.snapshot()
    for path in ROUTES:
        status, answer = await api.post(path, raw)
        assert status == 400, (what, path, answer)
        assert answer["error"] == "bad_request" and answer["reason"]
        if path == "/v1/otp":
            assert answer["reason"] == reason
    assert api.snapshot() == before and api.sent == []


@pytest.mark.parametrize("merchant", ["shop 6279-6112-3456-7894", "۶۲۷۹۶۱۱۲۳۴۵۶۷۸۹۴",
                                      "6279 6112 3456 7894"])
async def test_a_card_number_cannot_ride_in_the_merchant_name(api: Api, merchant: str) -> None:
    """The merchant is shown in the SMS and the message log, where no full card number
    may appear: a name holding one is refused, and nothing is sent."""
    before = api.snapshot()
    raw = body(f'"card": "{CARD}", "amount": 1000, "merchant": "{merchant}", '
               '"static_password": "x"')
    for path in ("/v1/otp", "/v1/payments/authorize"):
        status, answer = await api.post(path, raw)
        assert status == 400 and "12 or more digits" in answer["reason"], (path, answer)
    assert api.snapshot() == before and api.sent == []


@pytest.mark.parametrize("field_name", ["request_id", "otp"])
async def test_lone_surrogates_in_verify(api: Api, field_name: str) -> None:
    fields = {"request_id": '"abc"', "otp": '"123456"', field_name: '"x\\udfffy"'}
    raw = body(", ".join(f'"{k}": {v}' for k, v in fields.items()))
    before = api.snapshot()
    assert await api.post("/v1/otp/verify", raw) == (
        400, {"error": "bad_request", "reason": f"'{field_name}' must be valid Unicode text"})
    assert api.snapshot() == before


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1",
                                          "application/jsonx", "multipart/form-data"])
async def test_a_body_not_declared_as_json_gets_400(api: Api, content_type: str | None) -> None:
    raw = body(f'{ORDER}, "amount": 1000, "static_password": "static-pw"')
    before = api.snapshot()
    for path in ROUTES:
        status, answer = await api.post(path, raw, content_type=content_type)
        assert (status, answer["reason"]) == (
            400, "Content-Type must be application/json (UTF-8)")
    assert api.snapshot() == before
    status, _ = await api.post("/v1/payments/authorize", raw,
                               content_type="Application/JSON; charset=UTF-8")
    assert status == 200  # the same body, declared as JSON, is taken


async def test_a_body_over_the_limit_gets_413(api: Api) -> None:
    before = api.snapshot()
    padded = body(f'{ORDER}, "amount": 1000, "pad": "{"x" * MAX_BODY_BYTES}"')

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 1000):
            yield padded[start:start + 1000]

    for path in ROUTES:
        status, answer = await api.post(path, padded)
        assert (status, answer["reason"]) == (413, "body too large")
        response = await api.client.post(path, data=chunks(), headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": JSON})  # chunked: no length
        assert response.status == 413
    assert api.snapshot() == before


async def test_an_authorization_header_that_is_not_utf8_is_401(api: Api) -> None:
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    raw = body(f'{ORDER}, "amount": 1000')
    writer.write(b"POST /v1/otp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xed\xa0\x80"
                 b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n%s" % (len(raw), raw))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


# -- generated hostile bodies ------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    text: str  # written into the body as is


Pairs = tuple[tuple[str, Any], ...]  # an object, keys possibly repeated


def written(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, tuple):
        return "{" + ", ".join(f"{json.dumps(k)}: {written(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(written(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: a lone surrogate becomes a \\udxxx escape


FIELDS = ["card", "amount", "merchant", "otp", "static_password", "request_id"]
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
                     max_size=3)
scalars = st.one_of(
    st.just(CARD), st.sampled_from([1000, 1_500_000, 10**15, 10**15 + 1, 0, -1]),
    st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=12),
    st.tuples(st.text(max_size=4), surrogates, st.text(max_size=4)).map("".join),
    st.builds(lambda sign, digits: Raw(sign + "1" + "0" * digits), st.sampled_from(["", "-"]),
              st.integers(15, 6000)),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1E999", "1.5e15", "1e2"]).map(Raw),
    st.integers(50, 6000).map(lambda depth: Raw("[" * depth + "]" * depth)),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.lists(
    st.tuples(st.sampled_from(FIELDS) | st.text(max_size=4), inner), max_size=3).map(tuple),
    max_leaves=6)
objects = st.lists(st.tuples(st.sampled_from(FIELDS), values), max_size=8).map(tuple)
bodies = st.one_of(
    objects.map(lambda pairs: written(pairs).encode("utf-8", "surrogatepass")),
    values.map(lambda value: written(value).encode("utf-8", "surrogatepass")),
    st.binary(max_size=64),
    st.tuples(st.sampled_from([b"\xef\xbb\xbf", b"\xff", b" ", b"\x00"]),
              objects.map(lambda pairs: written(pairs).encode())).map(b"".join),
)
content_types = st.sampled_from(
    [JSON] * 6 + [None, "text/plain", "application/json; charset=utf-16"])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(path=st.sampled_from(ROUTES), raw=bodies, content_type=content_types)
async def test_generated_hostile_bodies_never_get_a_500(api: Api, path: str, raw: bytes,
                                                        content_type: str | None) -> None:
    tried("hostile HTTP bodies: 400 with a reason, never a 500")
    before, sent_before = api.snapshot(), len(api.sent)
    status, answer = await api.post(path, raw, content_type=content_type)
    assert status in ANSWERS, (status, answer)
    if status in (400, 413):
        assert answer["error"] == "bad_request" and answer["reason"]
        assert api.snapshot() == before and len(api.sent) == sent_before
    assert all(sms.to == MOBILE for sms in api.sent)
