"""Every answer of the HTTP API against its OpenAPI document (smsgw/transport/openapi.py).

`check_answer` validates one answer (status, content type, JSON body, with the document's
JSON Schema 2020-12 dialect); conftest.py applies it to every answer that the tests'
aiohttp TestClients get from a documented route, so the whole suite's traffic is checked.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from smsgw.transport.openapi import document

BASE = "urn:smsgw:openapi"
CHECKED: dict[str, int] = {}  # "METHOD path status" -> answers checked


class ContractBroken(AssertionError):
    """An answer the document does not describe."""


@functools.cache
def _registry() -> Registry:  # type: ignore[type-arg]
    return Registry().with_resource(BASE, Resource.from_contents(
        document(), default_specification=DRAFT202012))


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def documented(method: str, path: str) -> bool:
    return method.lower() in document()["paths"].get(path, {})


def check_answer(method: str, path: str, status: int, content_type: str, raw: bytes) -> None:
    operation = document()["paths"][path][method.lower()]
    answer = operation["responses"].get(str(status))
    if answer is None:
        raise ContractBroken(f"{method} {path}: status {status} is not in the contract")
    if content_type != "application/json":
        raise ContractBroken(f"{method} {path} {status}: content type {content_type}")
    body = json.loads(raw)
    pointer = _pointer("paths", path, method.lower(), "responses", str(status), "content",
                       "application/json", "schema")
    validator = jsonschema.Draft202012Validator({"$ref": f"{BASE}#/{pointer}"},
                                                registry=_registry())
    errors = [error.message for error in validator.iter_errors(body)]
    if errors:
        raise ContractBroken(f"{method} {path} {status}: {body!r}: {errors}")
    label = f"{method.upper()} {path} {status}"
    CHECKED[label] = CHECKED.get(label, 0) + 1


def schema_of(name: str) -> dict[str, Any]:
    """A component schema, with its $refs resolvable (for generating requests)."""
    return {"$ref": f"{BASE}#/components/schemas/{name}"}
