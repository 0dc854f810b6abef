"""The operator console in a real browser (Chromium, driven by Playwright): sign-in, the
status of a running gateway, look-up, each action, each role refused, the lockout, a
cross-site form refused, the audit trail, with a screenshot of each page.

One server (a gateway bound to a fake SMSC, and the console, in a thread of their own)
and one browser for the whole module; each test opens its own browser context.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from smsgw import admin, audit
from smsgw.app import App, build_app
from smsgw.console import people as people_module
from smsgw.core.clock import now
from smsgw.testing import RedisServer, free_port
from smsgw.transport import heartbeat as heartbeat_module
from smsgw.transport.gateway import Gateway
from smsgw.transport.smpp.client import SmppClient
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from tests.conftest import make_settings
from tests.console_helpers import ALI, API_KEY, CARD, PASSWORDS, POST, http_app, seed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# The README's screenshots: `SMSGW_SCREENSHOTS=docs/console pytest tests/test_console_browser.py`
# writes them there; otherwise they go to a temporary folder (taken all the same, so a page
# that fails to render fails here), and the checked-in ones stay as they are.
SHOTS = Path(os.environ.get("SMSGW_SCREENSHOTS") or tempfile.mkdtemp(prefix="smsgw-shots-"))
TIMEOUT_MS = 10_000
T = TypeVar("T")

if importlib.util.find_spec("playwright") is None or shutil.which(CHROMIUM) is None:
    pytest.skip("browser tests need Playwright (the test extra) and Debian's chromium at "
                f"{CHROMIUM} (`apt-get install chromium`; .ci/run installs it)",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


class Served:
    """The gateway (bound to a fake SMSC) and the console, on an event loop in a thread."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        from aiohttp import web

        self.smsc = await FakeSmsc().start()
        self.app: App = build_app(make_settings(self.redis_url, http={"api_key": API_KEY},
                                                smsc={"port": self.smsc.port}))
        await seed(self.app)
        self.gateway = Gateway(self.app, SmppClient.from_settings(self.app.settings))
        self.gateway_task = asyncio.create_task(self.gateway.run())
        await self.gateway.client.wait_bound(10)
        for text in ("09121234567:2000:55555", "BAL", "hello"):
            await self.smsc.wait_answered(self.smsc.inject_mo(ALI, "1112", text))
        self.runner = web.AppRunner(http_app(self.app), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.gateway.stop(drain_timeout=2)
        await asyncio.wait_for(self.gateway_task, 10)
        await self.smsc.stop()
        await self.app.close()

    def state(self, msisdn: str = ALI) -> dict[str, Any]:
        shown = self.call(admin.show(self.app.store, msisdn, now(), self.app.settings.transfer))
        shown.pop("at")
        return shown

    def card(self) -> dict[str, Any]:
        return self.call(admin.card_show(self.app.store, self.app.hasher, CARD))

    def trail(self) -> list[dict[str, Any]]:
        return self.call(audit.trail(self.app.store))


@pytest.fixture(scope="module")
def served(redis_server: RedisServer | str) -> Iterator[Served]:
    url = (redis_server if isinstance(redis_server, str) else redis_server.url)
    url = url.rsplit("/", 1)[0] + "/9"  # a database of our own: other tests flush db 0
    redis.Redis.from_url(url).flushdb()
    saved = people_module.SCRYPT_LOG2_N, heartbeat_module.HEARTBEAT_SECONDS
    people_module.SCRYPT_LOG2_N, heartbeat_module.HEARTBEAT_SECONDS = 10, 0.3
    server = Served(url)
    server.start()
    yield server
    server.stop()
    people_module.SCRYPT_LOG2_N, heartbeat_module.HEARTBEAT_SECONDS = saved
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, served: Served, name: str, lang: str = "") -> None:
    page.goto(f"{served.base}/console/login{'?lang=' + lang if lang else ''}")
    page.get_by_label("User").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{served.base}/console/status{'?lang=' + lang if lang else ''}")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def look_up(page: Page, served: Served, number: str) -> None:
    page.goto(f"{served.base}/console/lookup?lang=en")
    page.get_by_label("Subscriber number").fill(number)
    page.get_by_role("button", name="Look up").click()
    # the subscriber's page loaded: a form forged at once could meet a half-loaded one
    page.wait_for_url(f"{served.base}/console/subscriber?**")


# -- tests ---------------------------------------------------------------------------------

def test_sign_in_page_is_persian_right_to_left(page: Page, served: Served) -> None:
    page.goto(f"{served.base}/console/login")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "fa")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot(page, "sign-in")
    page.get_by_label("User").fill("vera")
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("نام کاربر یا گذرواژه درست نیست")


def test_status_shows_the_bound_gateway_and_masked_traffic(page: Page, served: Served) -> None:
    sign_in(page, served, "vera", lang="en")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_attribute("content", "5")
    expect(page.locator(".gateway .state.bound")).to_have_count(1)
    expect(page.locator("#store-state")).to_have_text("available")
    traffic = page.locator("table.traffic")
    expect(traffic).to_contain_text("BAL")
    # masked as in the message log: the recipient and amount shown, the PIN as its token
    expect(traffic).to_contain_text(":h~")
    assert "55555" not in traffic.inner_text()
    shot(page, "status")
    page.goto(f"{served.base}/console/status")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    shot(page, "status-fa")


def test_look_up_shows_the_subscriber(page: Page, served: Served) -> None:
    sign_in(page, served, "vera")
    look_up(page, served, "0912 123 4567")
    expect(page.locator("#plan")).to_have_text("postpaid")
    expect(page.locator("#bill")).to_have_text("7,000")
    for field in ("#pin-set", "#blocked", "#strikes", "#sent-today", "#sent-this-month"):
        expect(page.locator(field)).to_be_visible()
    # a viewer sees no action at all
    expect(page.get_by_role("button", name="Unblock")).to_have_count(0)
    shot(page, "lookup")


def test_care_unblocks_and_resets_the_pin_giving_a_reason(page: Page, served: Served) -> None:
    sign_in(page, served, "cara")
    look_up(page, served, ALI)
    expect(page.locator("#blocked")).to_have_text("yes")
    expect(page.get_by_role("button", name="Top up")).to_have_count(0)  # beyond care
    page.get_by_role("button", name="Unblock").click()  # no reason yet: the browser asks
    assert served.state()["blocked"] is True
    page.get_by_label("Reason").fill("customer called, identity checked")
    page.get_by_role("button", name="Unblock").click()
    expect(page.locator("#blocked")).to_have_text("no")
    expect(page.locator("#strikes")).to_have_text("0")
    page.get_by_label("Reason").fill("forgot the PIN")
    page.get_by_role("button", name="Reset PIN").click()
    expect(page.locator("#pin-set")).to_have_text("no")
    assert served.state()["pin_set"] is False
    expect(page.locator("table.history")).to_contain_text("reset_pin")


def test_supervisor_tops_up(page: Page, served: Served) -> None:
    sign_in(page, served, "sam")
    look_up(page, served, ALI)
    before = served.state()["balance"]
    page.get_by_label("Reason").fill("refund of a failed transfer")
    page.get_by_label("Amount").fill("5000")
    page.get_by_role("button", name="Top up").click()
    expect(page.get_by_role("status")).to_contain_text("Top up")
    assert served.state()["balance"] == before + 5000
    shot(page, "subscriber")


def test_card_actions_show_only_the_last_four(page: Page, served: Served) -> None:
    sign_in(page, served, "sam")
    page.goto(f"{served.base}/console/lookup?lang=en")
    page.get_by_label("Card number").fill(CARD)
    page.get_by_role("button", name="Find card").click()
    expect(page.locator("#card-last4")).to_have_text(f"…{CARD[-4:]}")
    assert CARD not in page.content() and CARD not in page.url
    page.get_by_label("Reason").fill("new SIM, identity checked at branch 12")
    page.get_by_label("New mobile number").fill("09121111111")
    page.get_by_role("button", name="Set mobile").click()
    expect(page.locator("#card-mobile")).to_have_text("989121111111")
    page.get_by_label("Reason").fill("customer asked")
    page.get_by_role("button", name="Disable card").click()
    expect(page.locator("#card-state")).to_have_text("disabled")
    shot(page, "card")
    page.get_by_label("Reason").fill("reported stolen")
    page.get_by_role("button", name="Block card").click()
    expect(page.locator("#card-state")).to_have_text("blocked")
    assert served.card()["state"] == "blocked"


FORGE = """([path, fields]) => {
  const form = document.createElement('form');
  form.method = 'post';
  form.action = path;
  const csrf = document.querySelector('input[name=csrf]').value;
  for (const [name, value] of Object.entries({...fields, csrf})) {
    const input = document.createElement('input');
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}"""


def forge(page: Page, served: Served, path: str, fields: dict[str, str]) -> int:
    """Submit a form made by hand in the page, with the page's own CSRF token."""
    with page.expect_response(f"{served.base}{path}") as answer:
        page.evaluate(FORGE, [path, fields])
    return answer.value.status


@pytest.mark.parametrize("who, fields", [
    ("vera", {"action": "unblock"}), ("vera", {"action": "reset_pin"}),
    ("cara", {"action": "topup", "amount": "1000000"})])
def test_each_role_is_refused_beyond_it(page: Page, served: Served, who: str,
                                        fields: dict[str, str]) -> None:
    """The buttons are not shown; a request made by hand, with the page's own token, is
    refused all the same and changes nothing."""
    sign_in(page, served, who)
    look_up(page, served, ALI)
    before, trail = served.state(), len(served.trail())
    status = forge(page, served, "/console/subscriber",
                   {"number": ALI, "reason": "by hand", **fields})
    assert status == 403
    expect(page.get_by_role("alert")).to_contain_text("این اقدام در نقش شما نیست")
    assert served.state() == before and len(served.trail()) == trail


def test_viewer_is_refused_card_actions(page: Page, served: Served) -> None:
    sign_in(page, served, "vera")
    digest = served.app.hasher.card_digest(CARD)
    page.goto(f"{served.base}/console/card/{digest}?lang=en")
    expect(page.get_by_role("button", name="Block card")).to_have_count(0)
    before = served.card()
    assert forge(page, served, f"/console/card/{digest}",
                 {"action": "disable", "reason": "x"}) == 403
    assert served.card() == before


def test_five_failed_sign_ins_lock_the_name(page: Page, served: Served) -> None:
    served.call(people_module.People(served.app.store).add(
        "lena", "viewer", "lena-password-1", "t"))
    page.goto(f"{served.base}/console/login?lang=en")
    for _ in range(5):
        page.get_by_label("User").fill("lena")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("locked for 15 minutes")
    page.get_by_label("User").fill("lena")
    page.get_by_label("Password").fill("lena-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("locked for 15 minutes")
    assert page.url.endswith("/console/login?lang=en")


EVIL = """<!doctype html><html><body>
<form id="f" method="post" action="{target}/console/subscriber">
<input name="number" value="{msisdn}"><input name="action" value="topup">
<input name="amount" value="900000"><input name="reason" value="gift">
<input name="csrf" value="guess">
</form><script>document.getElementById('f').submit()</script></body></html>"""


def test_a_form_on_another_site_is_refused(page: Page, served: Served) -> None:
    sign_in(page, served, "sam")
    before, trail = served.state(POST), len(served.trail())
    page.route("http://evil.test/**", lambda route: route.fulfill(
        content_type="text/html", body=EVIL.format(target=served.base, msisdn=POST)))
    with page.expect_response(f"{served.base}/console/subscriber") as answer:
        page.goto("http://evil.test/")
    assert answer.value.status == 403
    assert served.state(POST) == before and len(served.trail()) == trail


def test_supervisor_sees_the_audit_trail(page: Page, served: Served) -> None:
    served.call(audit.care(served.app.store, served.app.settings.transfer,
                           audit.Actor("cara", "shown in the trail"), POST, "unblock", now()))
    sign_in(page, served, "sam", lang="en")
    page.get_by_role("link", name="Audit trail").click()
    table = page.locator("table.audit")
    expect(table).to_contain_text("shown in the trail")
    expect(table).to_contain_text(POST)
    shot(page, "audit")
    page.goto(f"{served.base}/console/audit?lang=en&subject=0912 123 4567")
    expect(page.locator("table.audit tbody tr")).to_have_count(1)


def test_status_json_by_key(served: Served) -> None:
    import json
    import urllib.request

    request = urllib.request.Request(f"{served.base}/v1/status",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        body = json.loads(answer.read())
    (gateway,) = body["gateways"]
    assert gateway["binds"][0]["state"] == "bound" and body["store"] == {"ok": True}
