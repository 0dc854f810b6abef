"""The HTTP API's contract: the OpenAPI 3.1 document served at `GET /openapi.json`.

It describes every /v1 route, its request and every answer smsgw gives (the tests check
each answer of the API against it: tests/contract.py). The request limits below are the
ones http_api.py enforces: this is their one definition.
"""

from __future__ import annotations

from typing import Any

from smsgw.core.money import MONEY_CEILING
from smsgw.services.otp.service import VERIFY_REASONS

MAX_MERCHANT_CHARS = 64
MAX_SECRET_CHARS = 64
MAX_REQUEST_ID_CHARS = 64
MAX_CARD_CHARS = 32
MAX_IDEMPOTENCY_KEY_CHARS = 255
AUTHORIZE_REASONS = ("", "otp_invalid", "declined", "otp_required")
CARD_EXAMPLE = "6279611234567894"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(limit: int, description: str, example: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": limit, "description": description,
            "examples": [example]}


def _error(code: str, description: str, **extra: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {"error": {"const": code}, **extra}
    return {"type": "object", "description": description, "required": list(properties),
            "properties": properties, "additionalProperties": False}


SCHEMAS: dict[str, Any] = {
    "Card": {"type": "string", "pattern": "^[0-9]{16}$", "examples": [CARD_EXAMPLE],
             "description": "16 ASCII digits with a valid Luhn check digit"},
    "Amount": {"type": "integer", "minimum": 1, "maximum": MONEY_CEILING,
               "description": "rials", "examples": [1_500_000]},
    "Merchant": _text(MAX_MERCHANT_CHARS, "the merchant named in the SMS", "Digikala"),
    "RequestId": _text(MAX_REQUEST_ID_CHARS, "opaque; says nothing about the card",
                       "q3Jx9vZ0b1mYk2hN8sLwAg"),
    "OtpRequest": {
        "type": "object", "required": ["card", "amount", "merchant"],
        "properties": {"card": _ref("Card"), "amount": _ref("Amount"),
                       "merchant": _ref("Merchant")},
        "examples": [{"card": CARD_EXAMPLE, "amount": 1_500_000, "merchant": "Digikala"}]},
    "OtpRequested": {
        "type": "object", "required": ["request_id"], "additionalProperties": False,
        "properties": {"request_id": _ref("RequestId")},
        "description": "the same for every well-formed card (an SMS went out or not)",
        "examples": [{"request_id": "q3Jx9vZ0b1mYk2hN8sLwAg"}]},
    "VerifyRequest": {
        "type": "object", "required": ["request_id", "otp"],
        "properties": {"request_id": _ref("RequestId"),
                       "otp": _text(MAX_SECRET_CHARS, "the code the customer typed", "123456")},
        "examples": [{"request_id": "q3Jx9vZ0b1mYk2hN8sLwAg", "otp": "123456"}]},
    "Verdict": {
        "oneOf": [
            {"type": "object", "required": ["valid"], "additionalProperties": False,
             "properties": {"valid": {"const": True}}},
            {"type": "object", "required": ["valid", "reason"], "additionalProperties": False,
             "properties": {"valid": {"const": False},
                            "reason": {"enum": list(VERIFY_REASONS)}}}],
        "examples": [{"valid": True}, {"valid": False, "reason": "wrong_code"}]},
    "AuthorizeRequest": {
        "type": "object", "required": ["card", "amount", "merchant"],
        "description": "exactly one of otp and static_password",
        "properties": {
            "card": _ref("Card"), "amount": _ref("Amount"), "merchant": _ref("Merchant"),
            "otp": _text(MAX_SECRET_CHARS, "the dynamic password", "123456"),
            "static_password": _text(MAX_SECRET_CHARS, "the static second password",
                                     "s3cret")},
        "oneOf": [{"required": ["otp"], "not": {"required": ["static_password"]}},
                  {"required": ["static_password"], "not": {"required": ["otp"]}}],
        "examples": [{"card": CARD_EXAMPLE, "amount": 1_500_000, "merchant": "Digikala",
                      "otp": "123456"}]},
    "Authorization": {
        "type": "object", "required": ["approved", "reason"], "additionalProperties": False,
        "properties": {"approved": {"type": "boolean"},
                       "reason": {"enum": list(AUTHORIZE_REASONS),
                                  "description": "'' when approved"}},
        "examples": [{"approved": True, "reason": ""},
                     {"approved": False, "reason": "otp_invalid"}]},
    "Status": {
        "type": "object", "required": ["version", "store", "gateways"],
        "additionalProperties": False,
        "properties": {
            "version": {"type": "string"},
            "store": {"type": "object", "required": ["ok"], "additionalProperties": False,
                      "properties": {"ok": {"type": "boolean"}}},
            "gateways": {"type": "array", "items": _ref("Gateway")}},
        "examples": [{"version": "0.1.0", "store": {"ok": True}, "gateways": [
            {"id": "gw-1", "host": "sms-1", "started_at": "2026-07-23T10:00:00+03:30",
             "binds": [{"name": "smsc", "state": "bound",
                        "since": "2026-07-23T10:00:01+03:30"}],
             "mo_per_s": 12.5, "mt_per_s": 13.0, "in_processing": 2, "replies_unsent": 0,
             "outbox": 0}]}]},
    "Gateway": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "host", "started_at", "binds", "mo_per_s", "mt_per_s",
                     "in_processing", "replies_unsent", "outbox"],
        "properties": {
            "id": {"type": "string"}, "host": {"type": "string"},
            "started_at": {"type": "string", "description": "ISO 8601"},
            "binds": {"type": "array", "items": {
                "type": "object", "required": ["name", "state", "since"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"},
                               "state": {"enum": ["bound", "connecting", "down"]},
                               "since": {"type": "string", "description": "ISO 8601"}}}},
            "mo_per_s": {"type": "number", "minimum": 0},
            "mt_per_s": {"type": "number", "minimum": 0},
            "in_processing": {"type": "integer", "minimum": 0},
            "replies_unsent": {"type": "integer", "minimum": 0},
            "outbox": {"type": "integer", "minimum": 0}}},
    "BadRequest": {**_error("bad_request", "what is wrong with the request",
                            reason={"type": "string"}),
                   "examples": [{"error": "bad_request", "reason": "card must be 16 digits"}]},
    "Unauthorized": _error("unauthorized", "no or a wrong API key: nothing happened"),
    "RateLimited": _error("rate_limited", "too many requests for this card or mobile",
                          retry_after_seconds={"type": "integer", "minimum": 1}),
    "KeyReused": _error("idempotency_key_reused", "the key was used with another request",
                        reason={"type": "string"}),
    "InProgress": _error("in_progress", "a request with this key is still being answered",
                         reason={"type": "string"}),
    "Unavailable": _error("unavailable", "the store cannot be reached; retry",
                          reason={"type": "string"}),
}


def _answer(description: str, schema: str, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {"application/json": {"schema": _ref(schema)}}}
    if headers:
        answer["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                             for name, text in headers.items()}
    return answer


COMMON_ANSWERS = {
    "400": _answer("a body that is not a JSON object, a missing or mistyped field, a bad "
                   "amount or a malformed card", "BadRequest"),
    "401": _answer("no or a wrong `Authorization: Bearer <api key>`", "Unauthorized"),
    "413": _answer("a body over 16 KiB", "BadRequest"),
    "503": _answer("the store cannot be reached", "Unavailable", **{"Retry-After": "seconds"}),
}
IDEMPOTENT_ANSWERS = {
    "409": _answer("another request with this Idempotency-Key is still in progress",
                   "InProgress", **{"Retry-After": "seconds"}),
    "422": _answer("this Idempotency-Key was used with another body (or route)", "KeyReused"),
}
REPLAYED = {"Idempotent-Replayed": "`true` on an answer given again for a retried key"}
IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Any UTF-8 text up to 255 characters (no control character but tab; one"
                   " key a request: else 400). A retry with the same key and body within"
                   " 24 hours gets the first answer again (no second SMS or authorisation);"
                   " the same key with another body gets 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS},
    "example": "order-8812-otp-1"}


def _post(summary: str, request: str, answers: dict[str, Any],
          idempotent: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary, "security": [{"apiKey": []}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {**answers, **COMMON_ANSWERS, **(IDEMPOTENT_ANSWERS if idempotent else {})},
    }
    if idempotent:
        operation["parameters"] = [IDEMPOTENCY_PARAMETER]
    return operation


PATHS: dict[str, Any] = {
    "/v1/otp": {"post": _post(
        "Send a dynamic password for a payment to the card's registered mobile", "OtpRequest",
        {"202": _answer("accepted (whether or not the card gets an SMS)", "OtpRequested",
                        **REPLAYED),
         "429": _answer("rate limited: wait retry_after_seconds", "RateLimited",
                        **{"Retry-After": "seconds"})}, idempotent=True)},
    "/v1/otp/verify": {"post": _post(
        "Check a code against its request (single use)", "VerifyRequest",
        {"200": _answer("the verdict", "Verdict")})},
    "/v1/payments/authorize": {"post": _post(
        "Authorise a card payment with the dynamic or the static password", "AuthorizeRequest",
        {"200": _answer("the decision", "Authorization", **REPLAYED)}, idempotent=True)},
    "/v1/status": {"get": {
        "summary": "Every gateway sharing the store, as each last reported itself",
        "description": "The API key, or an operator console session cookie.",
        "security": [{"apiKey": []}, {"consoleSession": []}],
        "responses": {"200": _answer("the status", "Status"),
                      "401": _answer("neither the API key nor a session", "Unauthorized")}}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "smsgw payment API", "version": "1",
                 "description": "Bank card dynamic passwords (SMS OTP) for a payment "
                                "system. Answers never reveal whether a card exists."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer",
                       "description": "`Authorization: Bearer <[http] api_key>`"},
            "consoleSession": {"type": "apiKey", "in": "cookie", "name": "smsgw_console"}}},
    }
