"""The operator console's rules, over HTTP without a browser (tests/test_console_browser.py
drives it in Chromium): sign-in and lockout, sessions, cross-site requests, roles, the
audit trail (console and `smsgw admin`), the status (heartbeats, GET /v1/status), the
languages, and hostile input against all of it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw import admin, audit
from smsgw.app import App, build_app
from smsgw.commands.main import main
from smsgw.console import people as people_module
from smsgw.console.people import People, failures_key
from smsgw.console.sessions import COOKIE, session_key
from smsgw.core import masking
from smsgw.core.clock import now
from smsgw.messages import Inbound, Outbound
from smsgw.transport.gateway import Gateway
from smsgw.transport.heartbeat import Heartbeat, RecentTraffic, gateway_reports
from smsgw.transport.smpp.client import SmppClient
from tests.attacks import tried
from tests.conftest import TEST_KEY, make_settings
from tests.console_helpers import (
    ALI,
    API_KEY,
    CARD,
    PASSWORDS,
    POST,
    Browserless,
    browserless,
    seed,
)


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production hashes cost ~0.1 s a check; the rules are the same at a lower cost."""
    monkeypatch.setattr(people_module, "SCRYPT_LOG2_N", 10)


@pytest.fixture
async def console_app(store_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(store_url, http={"api_key": API_KEY}))
    await seed(application)
    yield application
    await application.close()


@pytest.fixture
async def web(console_app: App) -> AsyncIterator[Browserless]:
    client = await browserless(console_app)
    yield client
    await client.client.close()


async def state(app: App, msisdn: str = ALI) -> dict[str, Any]:
    shown = await admin.show(app.store, msisdn, now(), app.settings.transfer)
    shown.pop("at")
    return shown


# -- sign-in, lockout, sessions --------------------------------------------------------

async def test_sign_in_gives_an_httponly_strict_session_cookie(web: Browserless) -> None:
    token = await web.csrf("/console/login")
    answer = await web.client.post(
        "/console/login", data={"user": "vera", "password": PASSWORDS["vera"], "csrf": token},
        headers={"Origin": web.origin}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/console/status"
    cookie = answer.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert int(cookie["max-age"]) == 30 * 60
    assert (await web.client.get("/console/status")).status == 200


async def test_same_answer_for_a_wrong_password_and_an_unknown_name(web: Browserless) -> None:
    answers = []
    for name in ("vera", "nobody-here"):
        token = await web.csrf("/console/login")
        answer = await web.client.post(
            "/console/login", data={"user": name, "password": "wrong-password", "csrf": token},
            headers={"Origin": web.origin})
        answers.append((answer.status, CSRF_FREE(await answer.text())))
    assert answers[0] == answers[1] and answers[0][0] == 401
    assert "Wrong user name or password" in (await _english_failure(web))


async def _english_failure(web: Browserless) -> str:
    token = await web.csrf("/console/login?lang=en")
    answer = await web.client.post("/console/login?lang=en", data={
        "user": "vera", "password": "nope-nope-nope", "csrf": token},
        headers={"Origin": web.origin})
    return await answer.text()


def CSRF_FREE(page: str) -> str:
    return re.sub(r'name="csrf" value="[^"]*"', "", page)


async def test_five_failures_lock_the_name_for_15_minutes(web: Browserless,
                                                          console_app: App) -> None:
    for _ in range(5):
        assert await web.sign_in("cara", "wrong-password") == 401
    assert await web.sign_in("cara", PASSWORDS["cara"]) == 401  # locked: even the right one
    ttl = await console_app.store.redis.ttl(failures_key("cara"))
    assert 890 <= ttl <= 900
    # an unknown name locks the same way, so the lock reveals nothing
    for _ in range(5):
        await web.sign_in("ghost", "wrong-password")
    token = await web.csrf("/console/login?lang=en")
    locked = []
    for name in ("cara", "ghost"):
        answer = await web.client.post("/console/login?lang=en", data={
            "user": name, "password": "x", "csrf": token}, headers={"Origin": web.origin})
        locked.append((answer.status, CSRF_FREE(await answer.text())))
    assert locked[0] == locked[1] and "locked for 15 minutes" in locked[0][1]
    await console_app.store.redis.delete(failures_key("cara"))  # the 15 minutes are over
    assert await web.sign_in("cara", PASSWORDS["cara"]) == 303


async def test_a_success_resets_the_count_of_failures(web: Browserless) -> None:
    for _ in range(4):
        await web.sign_in("sam", "wrong-password")
    assert await web.sign_in("sam", PASSWORDS["sam"]) == 303
    for _ in range(4):
        await web.sign_in("sam", "wrong-password")
    assert await web.sign_in("sam", PASSWORDS["sam"]) == 303


async def test_passwords_are_kept_only_as_salted_scrypt_hashes(console_app: App) -> None:
    people = People(console_app.store)
    await people.add("twin-a", "viewer", "the same password", "t")
    await people.add("twin-b", "viewer", "the same password", "t")
    stored = [await console_app.store.redis.hget(f"console:user:{{{n}}}", "password")
              for n in ("twin-a", "twin-b")]
    assert all(s.startswith("scrypt$") and "the same password" not in s for s in stored)
    assert stored[0] != stored[1]  # a salt of each


async def test_sessions_expire_idle_absolute_and_when_the_person_goes(
        web: Browserless, console_app: App) -> None:
    assert await web.sign_in("vera", PASSWORDS["vera"]) == 303
    token = web.client.session.cookie_jar.filter_cookies(web.client.make_url("/"))[COOKIE].value
    key = session_key(token)
    assert 0 < await console_app.store.redis.ttl(key) <= 30 * 60  # idle expiry
    assert token not in json.dumps(await console_app.store.redis.hgetall(key))
    await console_app.store.redis.hset(key, "created", str(time.time() - 13 * 3600))
    page = await web.client.get("/console/status", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/console/login"  # absolute
    assert await web.sign_in("vera", PASSWORDS["vera"]) == 303
    await People(console_app.store).remove("vera")
    page = await web.client.get("/console/status", allow_redirects=False)
    assert page.status == 303  # removed: the session is gone with the person


async def test_sign_out_ends_the_session(web: Browserless) -> None:
    await web.sign_in("vera", PASSWORDS["vera"])
    assert await web.post("/console/logout", {}) == 303
    assert (await web.client.get("/console/status", allow_redirects=False)).status == 303


# -- cross-site requests ---------------------------------------------------------------

@pytest.mark.parametrize("csrf, origin", [
    ("", ""), ("forged-token", ""), (None, "https://evil.example"), (None, None),
    (None, "null")])
async def test_a_cross_site_action_is_refused_and_changes_nothing(
        web: Browserless, console_app: App, csrf: str | None, origin: str | None) -> None:
    await web.sign_in("sam", PASSWORDS["sam"])
    before = await state(console_app)
    status = await web.post("/console/subscriber", {
        "number": ALI, "action": "unblock", "reason": "forged"}, csrf=csrf, origin=origin)
    assert status == 403
    assert await state(console_app) == before
    assert await audit.trail(console_app.store) == []


async def test_a_referer_of_our_own_stands_for_a_missing_origin(web: Browserless,
                                                                console_app: App) -> None:
    await web.sign_in("cara", PASSWORDS["cara"])
    token = await web.csrf()
    answer = await web.client.post("/console/subscriber", data={
        "number": ALI, "action": "unblock", "reason": "called in", "csrf": token},
        headers={"Referer": f"{web.origin}/console/subscriber"}, allow_redirects=False)
    assert answer.status == 303 and not (await state(console_app))["blocked"]


async def test_sign_in_from_another_site_is_refused(web: Browserless) -> None:
    assert await web.sign_in("vera", PASSWORDS["vera"], origin="https://evil.example") == 403
    assert (await web.client.get("/console/status", allow_redirects=False)).status == 303


# -- roles -----------------------------------------------------------------------------

REFUSED = [("vera", "/console/subscriber", {"action": "unblock"}),
           ("vera", "/console/subscriber", {"action": "reset_pin"}),
           ("vera", "/console/subscriber", {"action": "topup", "amount": "1000"}),
           ("cara", "/console/subscriber", {"action": "topup", "amount": "1000"}),
           ("vera", "card", {"action": "disable"}), ("vera", "card", {"action": "block"}),
           ("cara", "card", {"action": "set_mobile", "mobile": "09121111111"})]


@pytest.mark.parametrize("who, path, form", REFUSED)
async def test_an_action_beyond_the_role_is_refused_and_changes_nothing(
        web: Browserless, console_app: App, who: str, path: str, form: dict[str, str]) -> None:
    await web.sign_in(who, PASSWORDS[who])
    if path == "card":
        path = f"/console/card/{console_app.hasher.card_digest(CARD)}"
    before = (await state(console_app), await admin.card_show(console_app.store,
                                                              console_app.hasher, CARD))
    status = await web.post(path, {"number": ALI, "reason": "beyond my role", **form})
    assert status == 403
    after = (await state(console_app), await admin.card_show(console_app.store,
                                                             console_app.hasher, CARD))
    assert after == before and await audit.trail(console_app.store) == []


async def test_care_and_supervisor_act_within_their_roles_and_each_act_is_audited(
        web: Browserless, console_app: App) -> None:
    await web.sign_in("cara", PASSWORDS["cara"])
    assert await web.post("/console/subscriber", {
        "number": "0936 111 1111", "action": "unblock", "reason": "called, id checked"}) == 303
    assert await web.post("/console/subscriber", {
        "number": ALI, "action": "reset_pin", "reason": "forgot it"}) == 303
    shown = await state(console_app)
    assert not shown["blocked"] and not shown["pin_set"] and shown["failed_pin_attempts"] == 0
    await web.sign_in("sam", PASSWORDS["sam"])
    assert await web.post("/console/subscriber", {
        "number": POST, "action": "topup", "amount": "۲,۰۰۰", "reason": "paid at branch"}) == 303
    assert (await state(console_app, POST))["bill"] == 5_000
    digest = console_app.hasher.card_digest(CARD)
    assert await web.post(f"/console/card/{digest}", {
        "action": "set_mobile", "mobile": "09121111111", "reason": "new SIM"}) == 303
    trail = await audit.trail(console_app.store)
    assert [(e["who"], e["action"], e["subject"]) for e in trail] == [
        ("cara", "unblock", ALI), ("cara", "reset_pin", ALI), ("sam", "topup 2000", POST),
        ("sam", "card_set_mobile", f"card …{CARD[-4:]}")]
    assert trail[0]["before"]["blocked"] is True and trail[0]["after"]["blocked"] is False
    assert trail[0]["reason"] == "called, id checked"
    assert trail[2]["before"]["bill"] == 7_000 and trail[2]["after"]["bill"] == 5_000
    assert trail[3]["after"]["mobile"] == "989121111111"
    assert CARD not in json.dumps(trail)


@pytest.mark.parametrize("form", [
    {"action": "unblock", "reason": ""}, {"action": "unblock", "reason": "   \n\t "},
    {"action": "unblock", "reason": "x" * 501}, {"action": "drop_table", "reason": "r"},
    {"action": "topup", "reason": "r", "amount": ""},
    {"action": "topup", "reason": "r", "amount": "-5"},
    {"action": "topup", "reason": "r", "amount": "1" + "0" * 16},
    {"action": "topup", "reason": "r", "amount": "12.5"},
    {"action": "unblock", "reason": "r", "number": "12345"}])
async def test_a_bad_form_gets_400_and_changes_nothing(web: Browserless, console_app: App,
                                                       form: dict[str, str]) -> None:
    await web.sign_in("sam", PASSWORDS["sam"])
    before = await state(console_app)
    assert await web.post("/console/subscriber", {"number": ALI, **form}) == 400
    assert await state(console_app) == before and await audit.trail(console_app.store) == []


async def test_the_audit_page_is_for_supervisors(web: Browserless) -> None:
    for who, status in (("vera", 403), ("cara", 403), ("sam", 200)):
        await web.sign_in(who, PASSWORDS[who])
        assert (await web.client.get("/console/audit")).status == status


# -- pages: languages, cards, assets ---------------------------------------------------

async def test_persian_right_to_left_by_default_english_on_request(web: Browserless) -> None:
    await web.sign_in("sam", PASSWORDS["sam"])
    persian = await (await web.client.get(f"/console/subscriber?number={ALI}")).text()
    english = await (await web.client.get(f"/console/subscriber?number={ALI}&lang=en")).text()
    assert '<html lang="fa" dir="rtl">' in persian and '<html lang="en" dir="ltr">' in english
    for page in (persian, english):  # the accessible names stay as interfaces.md gives them
        for name in ("Subscriber number", "Look up", "Unblock", "Reset PIN", "Top up",
                     "Reason"):
            assert f'aria-label="{name}"' in page
    assert "رفع انسداد" in persian and "رفع انسداد" not in english


async def test_a_card_page_shows_the_last_four_only(web: Browserless) -> None:
    await web.sign_in("cara", PASSWORDS["cara"])
    token = await web.csrf("/console/lookup")
    answer = await web.client.post("/console/card?lang=en", data={"card": CARD, "csrf": token},
                                   headers={"Origin": web.origin})
    page = await answer.text()
    assert answer.status == 200 and f"…{CARD[-4:]}" in page
    assert CARD not in page and CARD[:12] not in page and CARD not in str(answer.url)


async def test_no_page_loads_anything_from_another_machine(web: Browserless) -> None:
    await web.sign_in("sam", PASSWORDS["sam"])
    for path in ("/console/login", "/console/status", "/console/lookup",
                 f"/console/subscriber?number={ALI}", "/console/audit"):
        answer = await web.client.get(path)
        page = await answer.text()
        assert answer.status == 200, path
        assert not re.search(r'(src|href)="(https?:)?//', page), path
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert (await web.client.get("/console/static/console.css")).status == 200


# -- status: heartbeats and GET /v1/status -----------------------------------------------

async def test_status_json_in_the_spec_shape_by_key_or_session(web: Browserless,
                                                               console_app: App) -> None:
    gateway = Gateway(console_app, SmppClient.from_settings(console_app.settings))
    await Heartbeat(gateway).beat()
    assert (await web.client.get("/v1/status")).status == 401
    wrong = await web.client.get("/v1/status", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    by_key = await web.client.get("/v1/status", headers={"Authorization": f"Bearer {API_KEY}"})
    body = await by_key.json()
    assert set(body) == {"version", "store", "gateways"} and body["store"] == {"ok": True}
    (one,) = body["gateways"]
    assert set(one) == {"id", "host", "started_at", "binds", "mo_per_s", "mt_per_s",
                        "in_processing", "replies_unsent", "outbox"}
    assert [set(b) for b in one["binds"]] == [{"name", "state", "since"}]
    assert one["binds"][0]["state"] == "connecting"
    await web.sign_in("vera", PASSWORDS["vera"])
    assert (await (await web.client.get("/v1/status")).json())["gateways"] == body["gateways"]


async def test_a_gateway_that_stopped_reporting_shows_as_down(console_app: App,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    heartbeat = Heartbeat(Gateway(console_app, SmppClient.from_settings(console_app.settings)))
    await heartbeat.beat()
    later = time.time() + 60
    monkeypatch.setattr(time, "time", lambda: later)
    (report,) = await gateway_reports(console_app.store)
    assert report["binds"][0]["state"] == "down" and report["mo_per_s"] == 0


async def test_recent_traffic_is_masked_as_in_the_message_log(console_app: App) -> None:
    """The status page's last messages go through the message log's masker: a PIN is
    its token, garbled digits are hidden, an OTP is asterisks."""
    recent = RecentTraffic()
    shown = lambda message: masking.inbound_text(  # noqa: E731
        message, console_app.router.log_view(message), console_app.hasher)
    at = datetime(2026, 7, 23, 10, 0, tzinfo=UTC)
    recent.inbound(Inbound("989361111111", "1112", "09351234567:2000:12345678", at), shown)
    recent.inbound(Inbound("989361111111", "1112", "0935 1234567 2000 12345678", at), shown)
    recent.outbound(Outbound("989361111111", "7000", "code 123456", "otp.sms_card",
                             secret="123456"), masking.reply_text)
    texts = [record["text"] for record in recent.records()]
    assert texts[0].startswith("09351234567:2000:h~") and "12345678" not in texts[0]
    assert texts[1] == "0" + "*" * 22  # the log's stand-in keeps it reading as a transfer
    assert texts[2] == "code ******"


# -- smsgw admin: --reason, audit, user ----------------------------------------------------

@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, redis_url: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SMSGW_SECURITY_HASH_KEY", TEST_KEY)
    monkeypatch.setenv("SMSGW_REDIS_URL", redis_url)
    monkeypatch.setenv("USER", "opal")
    monkeypatch.setenv("LOGNAME", "opal")
    runner = CliRunner()
    return lambda *args, stdin=None: runner.invoke(main, list(args), input=stdin)


def load_one(cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    csv = folder / "subscribers.csv"
    csv.write_text("msisdn,plan,balance,bill,language\n09361111111,prepaid,100,0,fa\n")
    load = cli("admin", "load-subscribers", str(csv))
    assert load.exit_code == 0, load.output


def test_admin_actions_are_audited_with_the_os_user_and_reason(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    load_one(cli, tmp_path)
    assert cli("admin", "topup", "09361111111", "900", "--reason", "refund #12").exit_code == 0
    assert cli("admin", "unblock", "09361111111").exit_code == 0
    assert cli("admin", "card", "add", CARD, "--mobile", "09351234567", "--type", "debit",
               "--static-password", "pw-1234", "--reason", "branch 7").exit_code == 0
    assert cli("admin", "card", "block", CARD, "--reason", "stolen").exit_code == 0
    trail = [json.loads(line) for line in cli("admin", "audit", "--json").stdout.splitlines()]
    assert [(e["who"], e["action"], e["reason"]) for e in trail] == [
        ("cli:opal", "topup 900", "refund #12"), ("cli:opal", "unblock", ""),
        ("cli:opal", "card_add", "branch 7"), ("cli:opal", "card_block", "stolen")]
    assert trail[0]["before"]["balance"] == 100 and trail[0]["after"]["balance"] == 1000
    assert trail[3]["before"]["state"] == "active" and trail[3]["after"]["state"] == "blocked"
    only = cli("admin", "audit", "--json", "--subject", "0936 111 1111").stdout.splitlines()
    assert len(only) == 2
    card_only = cli("admin", "audit", "--json", "--subject", CARD[-4:]).stdout.splitlines()
    assert len(card_only) == 2
    assert CARD not in cli("admin", "audit").stdout


def test_a_reason_with_terminal_escapes_is_kept_harmless(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    load_one(cli, tmp_path)
    assert cli("admin", "unblock", "09361111111", "--reason", "a\x1b[2Jb\nc").exit_code == 0
    (entry,) = [json.loads(x) for x in cli("admin", "audit", "--json").stdout.splitlines()]
    assert entry["reason"] == "a [2Jb c"
    assert cli("admin", "unblock", "09361111111", "--reason", "x" * 501).exit_code == 2


def test_admin_user_add_list_remove(cli) -> None:  # type: ignore[no-untyped-def]
    added = cli("admin", "user", "add", "Nina", "--role", "care", stdin="a long password\n")
    assert added.exit_code == 0, added.output
    listed = json.loads(cli("admin", "user", "list", "--json").stdout)
    assert [(p["name"], p["role"]) for p in listed] == [("nina", "care")]
    assert "a long password" not in cli("admin", "user", "list").stdout
    assert cli("admin", "user", "add", "x", "--role", "care", stdin="short\n").exit_code == 2
    assert cli("admin", "user", "add", "bad name!", "--role", "care",
               stdin="a long password\n").exit_code == 2
    assert cli("admin", "user", "add", "y", "--role", "root",
               stdin="a long password\n").exit_code == 2
    assert cli("admin", "user", "remove", "nina").exit_code == 0
    assert cli("admin", "user", "remove", "nina").exit_code == 1
    assert json.loads(cli("admin", "user", "list", "--json").stdout) == []
    actions = [json.loads(x)["action"] for x in cli("admin", "audit", "--json").stdout.splitlines()]
    assert actions == ["user_add", "user_remove"]


# -- hostile input -----------------------------------------------------------------------

hostile_text = st.one_of(
    # (no lone surrogates: the HTTP client cannot send them; raw bytes are tried below)
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
    st.sampled_from(["", " ", "vera", "VERA ", "sam\x00", "{a}", "a}b{", "' OR 1=1 --",
                     "<script>", "../../etc", "🙂" * 30, "0" * 2000]))


@pytest.mark.parametrize("body, content_type", [
    (b"user=%FF%FE&password=%C3%28&csrf=x", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
    (b"--b\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n",
     "multipart/form-data; boundary=b"),
    (b'{"user": "sam"}', "application/json")])
async def test_a_body_that_is_no_form_gets_an_answer_not_a_failure(
        web: Browserless, body: bytes, content_type: str) -> None:
    tried("console raw bodies")
    for path in ("/console/login", "/console/subscriber"):
        answer = await web.client.post(path, data=body, headers={
            "Origin": web.origin, "Content-Type": content_type}, allow_redirects=False)
        assert answer.status in (400, 401, 403), (path, answer.status)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_text, password=hostile_text)
async def test_hostile_sign_ins_never_open_a_session_or_fail(web: Browserless,
                                                             name: str, password: str) -> None:
    tried("console sign-in")
    token = await web.csrf("/console/login")
    answer = await web.client.post("/console/login", data={
        "user": name, "password": password, "csrf": token}, headers={"Origin": web.origin},
        allow_redirects=False)
    right = PASSWORDS.get(name.strip().lower()) == password
    assert answer.status in ((303, 401) if right else (400, 401))
    if answer.status != 303:
        assert COOKIE not in answer.cookies
        assert (await web.client.get("/console/status", allow_redirects=False)).status == 303


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(who=st.sampled_from(["vera", "cara", "sam"]),
       action=st.sampled_from(["unblock", "reset_pin", "topup", "", "x", "disable"]),
       number=st.one_of(st.sampled_from([ALI, POST, "09361111111", "989999999999"]),
                        hostile_text),
       reason=hostile_text, amount=st.one_of(st.integers(-10, 10**16).map(str), hostile_text),
       forged=st.booleans())
async def test_hostile_forms_never_fail_and_refusals_change_nothing(
        web: Browserless, console_app: App, who: str, action: str, number: str, reason: str,
        amount: str, forged: bool) -> None:
    tried("console forms")
    await console_app.store.redis.delete(failures_key(who))
    await web.sign_in(who, PASSWORDS[who])
    before = [await state(console_app, m) for m in (ALI, POST)]
    trail = len(await audit.trail(console_app.store))
    status = await web.post("/console/subscriber", {
        "number": number, "action": action, "reason": reason, "amount": amount},
        csrf="forged" if forged else None)
    assert status in (303, 400, 403, 404), status
    if status != 303:
        assert [await state(console_app, m) for m in (ALI, POST)] == before
        assert len(await audit.trail(console_app.store)) == trail
    else:
        assert len(await audit.trail(console_app.store)) == trail + 1
    page = await web.client.get("/console/subscriber", params={"number": number[:200]})
    assert page.status in (200, 400, 404)


# -- served by `smsgw run` and by `smsgw console` --------------------------------------------

async def test_smsgw_run_serves_the_console_and_status_beside_the_api(redis_url: str) -> None:
    import aiohttp

    from smsgw.commands.run import start_http
    from smsgw.testing import free_port

    port = free_port()
    application = build_app(make_settings(redis_url, http={"api_key": API_KEY, "port": port}))
    gateway = Gateway(application, SmppClient.from_settings(application.settings))
    runner = await start_http(application, gateway)
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.get(f"{base}/console/login") as page:
                assert page.status == 200 and 'aria-label="Sign in"' in await page.text()
            async with http.get(f"{base}/v1/status") as status:
                assert status.status == 401
            key = {"Authorization": f"Bearer {API_KEY}"}
            async with http.get(f"{base}/v1/status", headers=key) as status:
                assert status.status == 200 and (await status.json())["store"] == {"ok": True}
            async with http.post(f"{base}/v1/otp/verify", json={}) as other:
                assert other.status == 401  # the rest of /v1 still needs the key
    finally:
        await runner.cleanup()
        await application.close()


async def test_smsgw_console_serves_only_the_console_and_status(redis_url: str,
                                                                tmp_path: Path) -> None:
    import asyncio
    import os
    import sys

    import aiohttp

    from smsgw.testing import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(SMSGW_SECURITY_HASH_KEY=TEST_KEY, SMSGW_HTTP_API_KEY=API_KEY)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smsgw", "console", "--port", str(port), "--redis", redis_url,
        cwd=tmp_path, env=env)
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    async with http.get(f"{base}/console/login") as page:
                        assert page.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("smsgw console did not start")
            key = {"Authorization": f"Bearer {API_KEY}"}
            async with http.get(f"{base}/v1/status", headers=key) as status:
                assert status.status == 200
            async with http.post(f"{base}/v1/otp", headers=key, json={}) as api:
                assert api.status == 404  # the payment API is not served here
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_the_console_keys_work_on_every_store_a_redis_cluster_too(app: App) -> None:
    """People, lockout, sessions, the audit trail and heartbeats: one key a call, each
    with its own hash tag, so a cluster serves them like one server."""
    from smsgw.console.people import SignIn
    from smsgw.console.sessions import Sessions

    await seed(app)
    people = People(app.store)
    assert (await people.sign_in("sam", PASSWORDS["sam"]))[0] is SignIn.OK
    assert (await people.sign_in("sam", "wrong-password"))[0] is SignIn.FAILED
    person = await people.get("sam")
    assert person is not None
    sessions = Sessions(app.store, people)
    opened = await sessions.open(person)
    assert (await sessions.find(opened.token)) == opened
    await audit.care(app.store, app.settings.transfer, audit.Actor("sam", "test"), ALI,
                     "unblock", now())
    assert [e["action"] for e in await audit.trail(app.store, ALI)] == ["unblock"]
    await Heartbeat(Gateway(app, SmppClient.from_settings(app.settings))).beat()
    assert len(await gateway_reports(app.store)) == 1


async def test_a_stopping_gateway_never_waits_on_a_heartbeat_that_swallowed_its_cancel(
        console_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel that lands in a store call and is swallowed there (the beat goes on to
    sleep) must not keep a stopping gateway waiting: it is cancelled again."""
    from smsgw.transport.heartbeat import beating
    gateway = Gateway(console_app, SmppClient.from_settings(console_app.settings))
    in_ping = asyncio.Event()

    async def swallowing_ping() -> bool:
        in_ping.set()
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            return False  # the cancel is lost here
        return True

    monkeypatch.setattr(console_app.store, "ping", swallowing_ping)
    async def stop_at_the_first_beat() -> None:
        async with beating(gateway):
            await in_ping.wait()

    started = time.monotonic()
    await asyncio.wait_for(stop_at_the_first_beat(), 10)  # it hung there for good
    assert time.monotonic() - started < 5  # the heartbeat sleeps 2 s between beats
