"""Helpers for the console's tests: an HTTP app with the console mounted, people, sign-in."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from smsgw.app import App
from smsgw.console.people import People
from smsgw.console.web import mount
from smsgw.services.otp.cards import with_luhn
from tests.conftest import add_subscribers

API_KEY = "status-test-key"
ALI = "989361111111"  # prepaid, PIN set, blocked after 3 strikes
POST = "989121234567"  # postpaid
CARD = with_luhn("627961000000123")
CARD_MOBILE = "989351234567"
PASSWORDS = {"vera": "viewer-password-1", "cara": "care-password-22",
             "sam": "supervisor-pass-333"}
ROLES = {"vera": "viewer", "cara": "care", "sam": "supervisor"}
CSRF = re.compile(r'name="csrf" value="([^"]*)"')


async def seed(app: App) -> None:
    """Three people, two subscribers, one card."""
    people = People(app.store)
    for name, role in ROLES.items():
        await people.add(name, role, PASSWORDS[name], "2026-07-01T00:00:00+00:00")
    await add_subscribers(app.store, (ALI, "prepaid", 20_000, 0), (POST, "postpaid", 0, 7_000))
    await app.store.redis.hset(f"s:{{{ALI}}}", mapping={
        "pin": app.hasher.pin_digest(ALI, "55555"), "blocked": "1", "strikes": "3"})
    from smsgw import admin
    from smsgw.core.clock import now

    await admin.card_add(app.store, app.hasher, CARD, CARD_MOBILE, "debit", "static-pw",
                         now())


def http_app(app: App) -> web.Application:
    http = web.Application(client_max_size=64 * 1024)
    mount(http, app)
    return http


@dataclass
class Browserless:
    """A client that behaves like our own pages: same Origin, the page's CSRF token."""

    client: TestClient  # type: ignore[type-arg]

    @property
    def origin(self) -> str:
        return f"http://{self.client.host}:{self.client.port}"

    async def csrf(self, path: str = "/console/status") -> str:
        page = await self.client.get(path)
        found = CSRF.search(await page.text())
        assert found, f"no form token on {path}"
        return found.group(1)

    async def sign_in(self, name: str, password: str, origin: str | None = None) -> int:
        token = await self.csrf("/console/login")
        answer = await self.client.post(
            "/console/login", data={"user": name, "password": password, "csrf": token},
            headers={"Origin": origin or self.origin}, allow_redirects=False)
        return answer.status

    async def post(self, path: str, data: dict[str, str], csrf: str | None = None,
                   origin: str | None = "") -> int:
        form = dict(data)
        form["csrf"] = await self.csrf() if csrf is None else csrf
        headers = {"Origin": self.origin if origin == "" else origin} if origin is not None else {}
        answer = await self.client.post(path, data=form, headers=headers, allow_redirects=False)
        return answer.status


async def browserless(app: App) -> Browserless:
    client = TestClient(TestServer(http_app(app)))
    await client.start_server()
    return Browserless(client)
