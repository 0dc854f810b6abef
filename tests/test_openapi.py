"""GET /openapi.json: a valid OpenAPI 3.1 document of every /v1 route; answers keep it.

The whole suite's HTTP traffic is checked against it (conftest.py, tests/contract.py);
here: the document itself, that the check is not vacuous, and requests generated from the
document's request fields (schemathesis-style), each answer checked the same way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from smsgw.console.web import mount as mount_console
from smsgw.core.money import MONEY_CEILING
from smsgw.services.otp.cards import with_luhn
from smsgw.transport.http_api import make_app
from smsgw.transport.openapi import document
from tests.attacks import tried
from tests.contract import ContractBroken, check_answer
from tests.deliveries import dropped
from tests.test_http_api import AUTH, Api, api
from tests.test_otp_rules import CARD, T0

__all__ = ["api"]


def test_the_document_is_valid_openapi_3_1() -> None:
    contract = document()
    validate(contract)  # type: ignore[arg-type]
    assert contract["openapi"].startswith("3.1")


async def test_it_is_served_without_the_key_and_names_every_v1_route(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status == 200
    assert await response.json() == json.loads(json.dumps(document()))
    web_app = make_app(api.app.otp, "k", dropped, lambda: T0, _healthy)
    mount_console(web_app, api.app)  # as `smsgw run` serves it: GET /v1/status too
    served = {(route.method.lower(), route.resource.canonical)
              for route in web_app.router.routes()
              if route.resource is not None and route.resource.canonical.startswith("/v1/")
              and route.method != "HEAD"}
    described = {(method, path) for path, item in document()["paths"].items()
                 for method in item}
    assert served == described


async def _healthy() -> dict[str, Any]:
    return {"store": True}


@pytest.mark.parametrize("status, body", [
    (202, {"request_id": "r", "card": CARD}),  # an extra field (a card!) is not allowed
    (202, {}),
    (200, {"valid": False}),  # a refusal names its reason
    (500, {"error": "boom"}),  # no such answer
])
def test_the_check_refuses_what_the_contract_does_not_say(status: int, body: Any) -> None:
    path = "/v1/otp" if status == 202 else "/v1/otp/verify"
    with pytest.raises(ContractBroken):
        check_answer("POST", path, status, "application/json", json.dumps(body).encode())


def _cards() -> st.SearchStrategy[str]:
    return st.one_of(st.just(CARD), st.from_regex(r"627961[0-9]{9}", fullmatch=True).map(
        with_luhn), st.from_regex(r"[0-9]{16}", fullmatch=True))


FIELDS = {  # each request field: values within its schema, and some beyond
    "card": _cards(),
    "amount": st.one_of(st.integers(min_value=1, max_value=MONEY_CEILING), st.integers()),
    "merchant": st.text(min_size=1, max_size=70),
    "otp": st.one_of(st.from_regex(r"[0-9]{6}", fullmatch=True), st.text(max_size=70)),
    "static_password": st.text(min_size=1, max_size=70),
    "request_id": st.text(min_size=1, max_size=70),
}


def _bodies(required: list[str], optional: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({name: FIELDS[name] for name in required},
                                 optional={name: FIELDS[name] for name in optional})


REQUESTS = st.one_of(
    st.tuples(st.just("/v1/otp"), _bodies(["card", "amount", "merchant"], [])),
    st.tuples(st.just("/v1/otp/verify"), _bodies(["request_id", "otp"], [])),
    st.tuples(st.just("/v1/payments/authorize"),
              _bodies(["card", "amount", "merchant"], ["otp", "static_password"])),
    st.tuples(st.sampled_from(["/v1/otp", "/v1/otp/verify", "/v1/payments/authorize"]),
              st.dictionaries(st.sampled_from(list(FIELDS)),
                              st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                        st.just(CARD)))),
)
HEADERS = st.sampled_from([AUTH, {**AUTH, "Idempotency-Key": "k"}, {"Content-Type":
                                                                   "application/json"}])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=REQUESTS, headers=HEADERS)
async def test_generated_requests_get_answers_the_contract_describes(
        api: Api, request: tuple[str, dict[str, Any]], headers: dict[str, str]) -> None:
    tried("generated requests: every answer in the contract")
    path, body = request
    response = await api.client.post(path, data=json.dumps(body), headers=headers)
    assert response.status != 500  # and the fixture checked the answer against the contract


async def test_status_answers_keep_the_contract(api: Api) -> None:
    api.app.settings.http.api_key = "test-api-key"  # /v1/status reads the settings' key
    web_app = make_app(api.app.otp, "test-api-key", dropped, lambda: T0, _healthy)
    mount_console(web_app, api.app)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        assert (await client.get("/v1/status")).status == 401
        assert (await client.get("/v1/status", headers=AUTH)).status == 200
    finally:
        await client.close()
