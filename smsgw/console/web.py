"""The operator console's pages and forms (aiohttp, server-rendered with Jinja2).

Every request goes through, in order: the session (cookie -> server-side session), the
cross-site guard (each POST must come from our own origin, by Origin or Referer, and
carry its session's CSRF token; the sign-in form a pre-session one), then the handler,
which checks the role before it acts. The actions are admin.py's, recorded by audit.py.
No page holds a full card number: a card is named by its keyed digest.
"""

from __future__ import annotations

import hmac
import importlib.metadata
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from smsgw import admin, audit
from smsgw.app import App
from smsgw.console.people import People, SignIn
from smsgw.console.sessions import COOKIE, IDLE_SECONDS, Session, Sessions
from smsgw.console.texts import translator
from smsgw.core.clock import now
from smsgw.core.money import MONEY_CEILING
from smsgw.core.text import canonical_msisdn, normalise_compact
from smsgw.observability.logs import get_logger
from smsgw.services.otp.cards import card_problem, normalise_card
from smsgw.store import StoreUnavailable
from smsgw.transport.heartbeat import gateway_reports, status_document

log = get_logger("smsgw.console")
HERE = Path(__file__).parent
PRE_COOKIE = "smsgw_console_pre"
ROLE_RANK = {"viewer": 0, "care": 1, "supervisor": 2}
# action -> the least role that may do it (interfaces.md, "Roles")
SUBSCRIBER_ACTIONS = {"unblock": "care", "reset_pin": "care", "topup": "supervisor"}
CARD_ACTIONS = {"disable": "care", "block": "care", "set_mobile": "supervisor"}
AUDIT_ROLE = "supervisor"
MAX_FIELD_CHARS = 1024
HISTORY_SHOWN = 50
RECENT_SHOWN = 50
CARD_DIGEST = re.compile(r"[0-9a-f]{32}")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Form = MultiDictProxy[Any]  # str values, or a FileField for an upload (refused)


def may(role: str, needed: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


class Refused(Exception):
    """A request answered with a page that says why (status 400, 403, 404 ...)."""

    def __init__(self, status: int, key: str, detail: str = "") -> None:
        super().__init__(key)
        self.status, self.key, self.detail = status, key, detail


@dataclass
class Console:
    app: App
    people: People
    sessions: Sessions
    version: str

    @classmethod
    def of(cls, app: App) -> Console:
        people = People(app.store)
        try:
            version = importlib.metadata.version("smsgw")
        except importlib.metadata.PackageNotFoundError:
            version = "0+unknown"
        return cls(app, people, Sessions(app.store, people), version)


CONSOLE = web.AppKey("console", Console)
SESSION: web.RequestKey[Session | None] = web.RequestKey("console_session")


# -- wiring ----------------------------------------------------------------------------

def mount(http_app: web.Application, app: App) -> None:
    """The console under /console/, and GET /v1/status, on an HTTP app."""
    console = Console.of(app)
    http_app[CONSOLE] = console
    http_app.router.add_get("/v1/status", status_json)
    http_app.add_subapp("/console/", console_app(console))


def console_app(console: Console) -> web.Application:
    sub = web.Application(middlewares=[_failures, _session, _cross_site])
    sub[CONSOLE] = console
    aiohttp_jinja2.setup(sub, loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined)
    sub.on_response_prepare.append(_security_headers)
    routes = [
        ("GET", "/", home), ("GET", "/login", login_page), ("POST", "/login", login),
        ("POST", "/logout", logout), ("GET", "/status", status_page),
        ("GET", "/lookup", lookup_page), ("GET", "/subscriber", subscriber_page),
        ("POST", "/subscriber", subscriber_action), ("POST", "/card", card_lookup),
        ("GET", r"/card/{digest}", card_page), ("POST", r"/card/{digest}", card_action),
        ("GET", "/audit", audit_page),
    ]
    for method, path, handler in routes:
        sub.router.add_route(method, path, handler)
    sub.router.add_static("/static/", HERE / "static")
    return sub


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


# -- middlewares -----------------------------------------------------------------------

@web.middleware
async def _failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refused as refused:
        return _page(request, "message.html", {"key": refused.key, "detail": refused.detail},
                     refused.status)
    except StoreUnavailable:
        return _page(request, "message.html", {"key": "unavailable", "detail": ""}, 503)


@web.middleware
async def _session(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.cookies.get(COOKIE, "")
    session = await request.app[CONSOLE].sessions.find(token) if token else None
    request[SESSION] = session
    return await handler(request)


@web.middleware
async def _cross_site(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        form = await _form(request)
        if not same_origin(request) or not _form_token_ok(request, form.get("csrf", "")):
            log.warning("console: cross-site request refused", path=request.path)
            raise Refused(403, "cross_site")
    return await handler(request)


def same_origin(request: web.Request) -> bool:
    """The request names our own host as its origin (Origin, or else Referer)."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer") or ""
    netloc = urlsplit(claimed).netloc if claimed != "null" else ""
    ours = {request.host, request.headers.get("X-Forwarded-Host", request.host)}
    return bool(netloc) and netloc in ours


def _form_token_ok(request: web.Request, given: str) -> bool:
    if request.path == "/console/login":
        expected = request.cookies.get(PRE_COOKIE, "")
        return bool(expected) and hmac.compare_digest(given.encode("utf-8", "replace"),
                                                      expected.encode("utf-8", "replace"))
    session: Session | None = request[SESSION]
    return session is not None and session.csrf_ok(given)


async def _form(request: web.Request) -> Form:
    try:
        return await request.post()
    except ValueError as exc:  # a body that is not a form (bad encoding, bad multipart)
        raise Refused(400, "bad_request", type(exc).__name__) from None


# -- helpers ---------------------------------------------------------------------------

def _lang(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "fa"


def _url(request: web.Request, path: str, **params: str) -> str:
    if _lang(request) == "en":
        params["lang"] = "en"
    return f"/console/{path}" + (f"?{urlencode(params)}" if params else "")


def _page(request: web.Request, template: str, context: dict[str, Any],
          status: int = 200) -> web.Response:
    lang = _lang(request)
    session: Session | None = request.get(SESSION)
    person = session.person if session is not None else None
    context = {
        "t": translator(lang), "lang": lang, "dir": "rtl" if lang == "fa" else "ltr",
        "url": lambda path, **params: _url(request, path, **params),
        "person": person, "csrf": session.csrf if session is not None else "",
        "may": lambda needed: person is not None and may(person.role, needed),
        "audit_role": AUDIT_ROLE, "other_lang": _other_language(request), **context,
    }
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def _other_language(request: web.Request) -> str:
    """This page in the other language."""
    params = {k: v for k, v in request.query.items() if k not in ("lang", "done")}
    if _lang(request) == "fa":
        params["lang"] = "en"
    return request.path + (f"?{urlencode(params)}" if params else "")


def _signed_in(request: web.Request, needed: str = "viewer") -> Session:
    session: Session | None = request[SESSION]
    if session is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(_url(request, "login"))
        raise Refused(403, "cross_site")
    if not may(session.person.role, needed):
        log.warning("console: action beyond role refused", user=session.person.name,
                    role=session.person.role, path=request.path)
        raise Refused(403, "forbidden")
    return session


def _field(form: Form, name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise Refused(400, "bad_request", f"{name} must be text")
    if len(value) > MAX_FIELD_CHARS:
        raise Refused(400, "bad_request", f"{name} is too long")
    return value


def _msisdn(raw: str) -> str:
    canonical = canonical_msisdn(normalise_compact(raw[:MAX_FIELD_CHARS]))
    if canonical is None:
        raise Refused(400, "bad_request", "not a mobile number")
    return canonical


def _reason(form: Form) -> str:
    try:
        reason = audit.clean_reason(_field(form, "reason"))
    except ValueError as exc:
        raise Refused(400, "bad_request", str(exc)) from None
    if not reason:
        raise Refused(400, "bad_request", "give a reason")
    return reason


def _amount(form: Form) -> int:
    raw = normalise_compact(_field(form, "amount")).replace(",", "")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MONEY_CEILING:
        raise Refused(400, "bad_request", f"the amount is a whole number of rials, 1 to "
                                          f"{MONEY_CEILING:,}")
    return int(raw)


def _choice(form: Form, allowed: dict[str, str]) -> str:
    action = _field(form, "action")
    if action not in allowed:
        raise Refused(400, "bad_request", "unknown action")
    return action


# -- sign-in ---------------------------------------------------------------------------

async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(_url(request, "status" if request[SESSION] else "login"))


async def login_page(request: web.Request) -> web.StreamResponse:
    return _login_form(request, "", 200)


def _login_form(request: web.Request, message: str, status: int) -> web.Response:
    token = request.cookies.get(PRE_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
        token = secrets.token_urlsafe(32)
    # a signed-in person may sign in again (as another): this page shows no session's form
    response = _page(request, "login.html", {"pre_token": token, "message": message,
                                             "person": None, "csrf": ""}, status)
    _set_cookie(request, response, PRE_COOKIE, token, 3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    console = request.app[CONSOLE]
    outcome, person = await console.people.sign_in(_field(form, "user"),
                                                   _field(form, "password"))
    if outcome is not SignIn.OK or person is None:
        log.warning("console: sign-in failed", outcome=outcome.value)
        return _login_form(request, "locked" if outcome is SignIn.LOCKED else "sign_in_failed",
                           401)
    session = await console.sessions.open(person)
    log.info("console: signed in", user=person.name, role=person.role)
    response = web.HTTPSeeOther(_url(request, "status"))
    _set_cookie(request, response, COOKIE, session.token, IDLE_SECONDS)
    response.del_cookie(PRE_COOKIE, path="/console/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = _signed_in(request)
    await request.app[CONSOLE].sessions.close(session.token)
    response = web.HTTPSeeOther(_url(request, "login"))
    response.del_cookie(COOKIE, path="/")
    raise response


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                max_age: int) -> None:
    # the session cookie also opens GET /v1/status, so its path is /
    secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
    response.set_cookie(name, value, max_age=max_age, path="/" if name == COOKIE else
                        "/console/", httponly=True, samesite="Strict", secure=secure)


# -- status ----------------------------------------------------------------------------

async def _status_data(console: Console) -> tuple[bool, list[dict[str, Any]]]:
    store = console.app.store
    ok = await store.ping()
    return ok, await gateway_reports(store) if ok else []


async def status_json(request: web.Request) -> web.Response:
    """GET /v1/status: the API key, or a console session."""
    console = request.app[CONSOLE]
    key = console.app.settings.http.api_key
    given = request.headers.get("Authorization", "").encode("utf-8", "replace")
    by_key = bool(key) and hmac.compare_digest(given, f"Bearer {key}".encode())
    token = request.cookies.get(COOKIE, "")
    if not by_key and (not token or await console.sessions.find(token) is None):
        return web.json_response({"error": "unauthorized"}, status=401)
    ok, reports = await _status_data(console)
    return web.json_response(status_document(console.version, ok, reports))


async def status_page(request: web.Request) -> web.StreamResponse:
    _signed_in(request)
    ok, reports = await _status_data(request.app[CONSOLE])
    errors: dict[str, int] = {}
    recent: list[dict[str, str]] = []
    for report in reports:
        for kind, count in report.get("errors", {}).items():
            errors[kind] = errors.get(kind, 0) + count
        recent += report.get("recent", [])
    recent.sort(key=lambda record: record["ts"], reverse=True)
    return _page(request, "status.html", {"store_ok": ok, "gateways": reports,
                                          "errors": errors, "recent": recent[:RECENT_SHOWN]})


# -- subscribers -----------------------------------------------------------------------

async def lookup_page(request: web.Request) -> web.StreamResponse:
    _signed_in(request)
    return _page(request, "lookup.html", {})


async def subscriber_page(request: web.Request) -> web.StreamResponse:
    _signed_in(request)
    msisdn = _msisdn(request.query.get("number", ""))
    console = request.app[CONSOLE]
    store = console.app.store
    try:
        shown = await admin.show(store, msisdn, now(), console.app.settings.transfer)
    except admin.UnknownSubscriber:
        raise Refused(404, "not_found", msisdn) from None
    except admin.CareRefused as exc:  # e.g. a top-up beyond the money ceiling
        raise Refused(400, "bad_request", str(exc)) from None
    history = await store.history(msisdn, HISTORY_SHOWN)
    done = request.query.get("done", "")
    return _page(request, "subscriber.html", {
        "s": shown, "history": [_entry_row(e) for e in history],
        "done": done if done in SUBSCRIBER_ACTIONS else "", "actions": SUBSCRIBER_ACTIONS})


async def subscriber_action(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    action = _choice(form, SUBSCRIBER_ACTIONS)
    session = _signed_in(request, SUBSCRIBER_ACTIONS[action])
    msisdn = _msisdn(_field(form, "number"))
    actor = audit.Actor(session.person.name, _reason(form))
    amount = _amount(form) if action == "topup" else 0
    console = request.app[CONSOLE]
    try:
        await audit.care(console.app.store, console.app.settings.transfer, actor, msisdn,
                         action, now(), amount)
    except admin.UnknownSubscriber:
        raise Refused(404, "not_found", msisdn) from None
    log.info("console: care action", user=actor.name, action=action)
    raise web.HTTPSeeOther(_url(request, "subscriber", number=msisdn, done=action))


def _entry_row(entry: dict[str, Any]) -> dict[str, str]:
    rest = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("at", "kind"))
    return {"at": str(entry.get("at", "")), "kind": str(entry.get("kind", "")), "rest": rest}


# -- cards -----------------------------------------------------------------------------

async def card_lookup(request: web.Request) -> web.StreamResponse:
    """A POST: the card number stays out of URLs, logs and the browser's history."""
    _signed_in(request)
    form = await _form(request)
    number = normalise_card(_field(form, "card"))
    problem = card_problem(number)
    if problem is not None:
        raise Refused(400, "bad_request", problem)
    console = request.app[CONSOLE]
    digest = console.app.hasher.card_digest(number)
    await _card(console, digest)
    raise web.HTTPSeeOther(_url(request, f"card/{digest}"))


async def _card(console: Console, digest: str) -> dict[str, Any]:
    if not CARD_DIGEST.fullmatch(digest):
        raise Refused(404, "not_found")
    try:
        return await admin.card_show_by_digest(console.app.store, digest, "")
    except admin.CardProblem:
        raise Refused(404, "not_found") from None


async def card_page(request: web.Request) -> web.StreamResponse:
    _signed_in(request)
    console = request.app[CONSOLE]
    digest = request.match_info["digest"]
    shown = await _card(console, digest)
    history = await console.app.store.card_history(digest, HISTORY_SHOWN)
    done = request.query.get("done", "")
    return _page(request, "card.html", {
        "c": shown, "digest": digest, "history": [_entry_row(e) for e in history],
        "done": done if done in CARD_ACTIONS else "", "actions": CARD_ACTIONS})


async def card_action(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    action = _choice(form, CARD_ACTIONS)
    session = _signed_in(request, CARD_ACTIONS[action])
    console = request.app[CONSOLE]
    digest = request.match_info["digest"]
    last4 = str((await _card(console, digest))["card"]).removeprefix("…")
    actor = audit.Actor(session.person.name, _reason(form))
    mobile = _msisdn(_field(form, "mobile")) if action == "set_mobile" else ""
    try:
        await audit.card(console.app.store, actor, digest, last4, action, now(), mobile)
    except admin.CardProblem:
        raise Refused(404, "not_found") from None
    log.info("console: card action", user=actor.name, action=action)
    raise web.HTTPSeeOther(_url(request, f"card/{digest}", done=action))


# -- audit -----------------------------------------------------------------------------

async def audit_page(request: web.Request) -> web.StreamResponse:
    _signed_in(request, AUDIT_ROLE)
    subject = request.query.get("subject", "").strip()[:64]
    if subject and canonical_msisdn(normalise_compact(subject)):
        subject = canonical_msisdn(normalise_compact(subject)) or subject
    entries = await audit.trail(request.app[CONSOLE].app.store, subject or None)
    return _page(request, "audit.html", {"entries": list(reversed(entries)),
                                         "subject": subject, "when": _when})


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return iso
