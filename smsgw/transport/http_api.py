"""The HTTP API the bank's payment system calls (interfaces.md, "HTTP"), on aiohttp.

Every /v1 call needs `Authorization: Bearer <[http] api_key>` (401 otherwise, nothing
else happens); `GET /metrics` needs `Bearer <[http] metrics_key>` when that is set.
A body that is not a JSON object (strictly: UTF-8, `Content-Type: application/json`, no
NaN or Infinity, no duplicate key), lacks a field, has a wrong type, a non-positive,
non-integer or too large amount, text that is not valid Unicode, or a malformed card gets
400 with a reason and changes nothing; one over MAX_BODY_BYTES gets 413. Everything else
gets the same status and shape whether or not the card exists.
`GET /openapi.json` is the contract of every /v1 answer (openapi.py); POST /v1/otp and
POST /v1/payments/authorize take an `Idempotency-Key` (idempotency.py).
TLS is terminated in front of smsgw by a reverse proxy.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from smsgw.core.money import MONEY_CEILING, MONEY_CEILING_DIGITS
from smsgw.core.text import looks_like_digit
from smsgw.messages import Outbound
from smsgw.observability import metrics
from smsgw.services.otp.cards import card_problem
from smsgw.services.otp.service import OtpService, printable
from smsgw.store import StoreUnavailable
from smsgw.transport import openapi
from smsgw.transport.idempotency import Answer, Idempotency, InProgress, KeyReused, Work
from smsgw.transport.openapi import (
    MAX_CARD_CHARS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_MERCHANT_CHARS,
    MAX_REQUEST_ID_CHARS,
    MAX_SECRET_CHARS,
)

MAX_BODY_BYTES = 16 * 1024
# 12 or more digits with nothing but separators (no letter) between them; checked on the
# merchant as the SMS shows it (printable), every digit look-alike a digit
CARD_LIKE = re.compile(r"[0-9](?:[\W_]*[0-9]){11,}")
# the SMS to send, and the decoys (sent to no one, made durable alike: card secrecy);
# returns once the SMS is durable
Deliver = Callable[[list[Outbound], list[Outbound]], Awaitable[None]]
Health = Callable[[], Awaitable[dict[str, Any]]]
# routes that check the key (or a console session) themselves: console/web.py
OWN_AUTH_PATHS = frozenset({"/v1/status"})


class BadBody(Exception):
    """A request body that gets 400; the message is the reason shown to the caller."""


def make_app(otp: OtpService, api_key: str, deliver: Deliver, clock: Callable[[], datetime],
             health: Health, metrics_key: str = "",
             idempotency: Idempotency | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[_timing, _errors, _auth(api_key)])
    api = _Api(otp, deliver, clock, idempotency or Idempotency(otp.store, otp.hasher))
    app.router.add_post("/v1/otp", api.request_otp)
    app.router.add_post("/v1/otp/verify", api.verify)
    app.router.add_post("/v1/payments/authorize", api.authorize)

    async def healthz(_: web.Request) -> web.Response:
        state = await health()
        return web.json_response(state, status=200 if state.get("store") else 503)

    async def metrics_text(request: web.Request) -> web.Response:
        if metrics_key and not _bearer_is(request, metrics_key):
            return _unauthorized()
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def contract(_: web.Request) -> web.Response:
        return web.json_response(openapi.document())

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/openapi.json", contract)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        metrics.HTTP_REQUESTS.labels(route=name, status=str(status)).observe(
            time.perf_counter() - started)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadBody as exc:
        return web.json_response({"error": "bad_request", "reason": str(exc)}, status=400)
    except web.HTTPRequestEntityTooLarge:
        return web.json_response({"error": "bad_request", "reason": "body too large"},
                                 status=413)
    except StoreUnavailable:
        return web.json_response({"error": "unavailable", "reason": "try again later"},
                                 status=503, headers={"Retry-After": "1"})
    except KeyReused:
        return web.json_response({"error": "idempotency_key_reused", "reason":
                                  "this Idempotency-Key was used with another request"},
                                 status=422)
    except InProgress:
        return web.json_response({"error": "in_progress", "reason": "a request with this "
                                  "Idempotency-Key is still being answered"},
                                 status=409, headers={"Retry-After": "1"})
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if not request.path.startswith("/v1/"):
            raise  # the console's own pages answer these as pages
        return web.json_response({"error": "not_found" if exc.status == 404 else
                                  "method_not_allowed", "reason": exc.reason},
                                 status=exc.status, headers=_allow(exc))


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def _auth(api_key: str) -> Any:
    """Every /v1 call needs the API key (none configured: nothing gets in)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.path.startswith("/v1/") and request.path not in OWN_AUTH_PATHS
                and not _bearer_is(request, api_key)):
            return _unauthorized()
        return await handler(request)

    return check


def _unauthorized() -> web.Response:
    return web.json_response({"error": "unauthorized"}, status=401)


def _bearer_is(request: web.Request, key: str) -> bool:
    # bytes, as any str encodes (aiohttp keeps undecodable header bytes as surrogates)
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogatepass")
    return bool(key) and hmac.compare_digest(given, f"Bearer {key}".encode("utf-8",
                                                                           "surrogatepass"))


class _Api:
    def __init__(self, otp: OtpService, deliver: Deliver, clock: Callable[[], datetime],
                 idempotency: Idempotency) -> None:
        self._otp = otp
        self._deliver = deliver
        self._clock = clock
        self._idempotency = idempotency

    async def _once(self, request: web.Request, body: dict[str, Any], work: Work) -> web.Response:
        """`work`'s answer, or with an Idempotency-Key the first answer given for it."""
        keys = request.headers.getall("Idempotency-Key", [])
        key = keys[0] if keys else None
        if key is None:
            answer = await work()
        elif len(keys) > 1:
            raise BadBody("give one Idempotency-Key")
        elif not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
            raise BadBody(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
        elif any(ch == "\x7f" or (ch < " " and ch != "\t") or "\ud800" <= ch <= "\udfff"
                 for ch in key):  # bytes that are not UTF-8 arrive as surrogates
            raise BadBody("Idempotency-Key must be UTF-8 text without control characters")
        else:
            answer = await self._idempotency.answer(key, request.path, body, work)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)

    async def request_otp(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        card, amount, merchant = _card(body), _amount(body), _merchant(body)

        async def work() -> Answer:
            answer = await self._otp.request_for_payment(card, amount, merchant, self._clock())
            if not answer.accepted:
                return Answer(429, {"error": "rate_limited",
                                    "retry_after_seconds": answer.retry_after},
                              {"Retry-After": str(answer.retry_after)})
            await self._deliver(answer.replies, answer.decoys)  # durable before the 202
            return Answer(202, {"request_id": answer.request_id})

        return await self._once(request, body, work)

    async def verify(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        request_id = _string(body, "request_id", MAX_REQUEST_ID_CHARS)
        code = _string(body, "otp", MAX_SECRET_CHARS)
        valid, reason = await self._otp.verify(request_id, code, self._clock())
        return web.json_response({"valid": True} if valid else {"valid": False, "reason": reason})

    async def authorize(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        card, amount, merchant = _card(body), _amount(body), _merchant(body)
        has_otp, has_static = "otp" in body, "static_password" in body
        if has_otp == has_static:
            raise BadBody("give exactly one of otp and static_password")
        otp = _string(body, "otp", MAX_SECRET_CHARS) if has_otp else None
        static = _string(body, "static_password", MAX_SECRET_CHARS) if has_static else None

        async def work() -> Answer:
            approved, reason = await self._otp.authorize(card, amount, merchant, otp, static,
                                                         self._clock())
            return Answer(200, {"approved": approved, "reason": reason})

        return await self._once(request, body, work)


class _NotJson(ValueError):
    """JSON that Python's parser would take but RFC 8259 or we refuse."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _bounded_int(digits: str) -> int:
    """An integer as parsed, or one just beyond the money ceiling if it has more digits
    than any amount may (no value past the ceiling differs from another for us, and a
    number of thousands of digits would cost seconds to convert, or raise)."""
    if len(digits.lstrip("-")) <= MONEY_CEILING_DIGITS:
        return int(digits)
    return -(MONEY_CEILING + 1) if digits.startswith("-") else MONEY_CEILING + 1


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        raise _NotJson("body has a duplicate key")
    return body


def _content_is_json(request: web.Request) -> bool:
    charset = (request.charset or "utf-8").lower()
    return request.content_type == "application/json" and charset == "utf-8"


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not _content_is_json(request):
        raise BadBody("Content-Type must be application/json (UTF-8)")
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8"), parse_int=_bounded_int,
                          parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except _NotJson as exc:
        raise BadBody(str(exc)) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadBody("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadBody("body must be a JSON object")
    return body


def _string(body: dict[str, Any], field: str, limit: int) -> str:
    if field not in body:
        raise BadBody(f"missing field {field!r}")
    value = body[field]
    if not isinstance(value, str):
        raise BadBody(f"{field!r} must be a string")
    if not value or len(value) > limit:
        raise BadBody(f"{field!r} must be 1 to {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a \ud800 escape)
        raise BadBody(f"{field!r} must be valid Unicode text") from None
    return value


def _card(body: dict[str, Any]) -> str:
    card = _string(body, "card", MAX_CARD_CHARS)
    problem = card_problem(card)
    if problem is not None:
        raise BadBody(problem)
    return card


def _amount(body: dict[str, Any]) -> int:
    if "amount" not in body:
        raise BadBody("missing field 'amount'")
    amount = body["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise BadBody("'amount' must be an integer number of rials")
    if amount <= 0:
        raise BadBody("'amount' must be positive")
    if amount > MONEY_CEILING:
        raise BadBody(f"'amount' is too large (at most {MONEY_CEILING} rials)")
    return amount


def _merchant(body: dict[str, Any]) -> str:
    merchant = _string(body, "merchant", MAX_MERCHANT_CHARS)
    # the merchant is shown in the SMS and the message log: no card number may ride in it,
    # whatever separates its digits there (printable drops tabs and format characters and
    # squeezes spaces: "6279\t6112..." is shown "62796112..."), in whatever digits
    shown = printable(merchant, limit=len(merchant))
    if CARD_LIKE.search("".join("0" if looks_like_digit(ch) else ch for ch in shown)):
        raise BadBody("'merchant' must not hold 12 or more digits in a row (a card number?)")
    return merchant
