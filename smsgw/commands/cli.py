"""The `smsgw` command line. Exit status: 0 done, 1 failed, 2 bad usage or bad input file."""

from __future__ import annotations

import asyncio
import getpass
import json
import math
import secrets
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.config import ConfigError, Settings, load_settings
from smsgw.core.clock import now, parse_timestamp
from smsgw.core.money import parse_rials, shown
from smsgw.core.text import canonical_msisdn, normalise_compact
from smsgw.observability.logs import configure_logging, get_logger
from smsgw.services.otp.cards import CARD_DIGITS, card_problem, is_our_card, normalise_card
from smsgw.store import HISTORY_LENGTH, StoreUnavailable, WrongStoreMode
from smsgw.subscribers import BadInputFile, read_subscriber_file

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
MAX_OLDER_THAN = 10 * 365 * 24 * 3600.0  # seconds: ten years
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def common_options(command: F) -> F:
    """--config and --redis, on every command."""
    command = click.option(
        "--redis", "redis_url", envvar="SMSGW_REDIS_URL", default=None, metavar="URL",
        help="Redis server (redis://host:port/db). Default: [redis] url, or the embedded "
             "in-process store when that is empty (nothing survives the process).",
    )(command)
    command = click.option(
        "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
        default=None, metavar="FILE",
        help="Settings file. Default: config/smsgw.toml in this folder, else built-in "
             "defaults (equal to the shipped file).",
    )(command)
    return command


def load(config_file: Path | None, redis_url: str | None, strict_key: bool = False,
         **overrides: dict[str, Any]) -> Settings:
    merged = dict(overrides)
    if redis_url is not None:
        merged.setdefault("redis", {})["url"] = redis_url
    try:
        settings = load_settings(config_file, merged)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log.format, settings.log.level)
    if settings.security.is_development_key:
        if strict_key:
            raise click.ClickException(
                "refusing to start with the development hash key. Set SMSGW_SECURITY_HASH_KEY "
                "(e.g. `export SMSGW_SECURITY_HASH_KEY=$(openssl rand -hex 32)`) or "
                "[security] hash_key_file; see README, Security."
            )
        get_logger("smsgw").warning(
            "development hash key in use: fine for trying things out, never for production"
        )
    return settings


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (the `fast` extra): the event loop's own costs
    were a large share of the gateway's profile."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        return asyncio.run(coro)
    except StoreUnavailable as exc:
        raise click.ClickException(f"the store is unavailable: {exc}") from exc
    except WrongStoreMode as exc:
        raise click.ClickException(str(exc)) from exc


async def with_app(settings: Settings, work: Callable[[App], Awaitable[T]]) -> T:
    app = build_app(settings)
    try:
        await app.store.check_mode()
        return await work(app)
    finally:
        await app.close()


def moment_argument(value: str) -> datetime:
    """An ISO 8601 moment with offset, in years that calendars and time zones can show."""
    try:
        moment = parse_timestamp(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    if not 1900 <= moment.year <= 9000:
        raise click.BadParameter(f"{shown(value)}: a year from 1900 to 9000", param_hint="--at")
    return moment


def finite_seconds(value: float) -> float:
    if not (math.isfinite(value) and 0 <= value <= MAX_OLDER_THAN):
        raise click.BadParameter(f"{value}: 0 to {MAX_OLDER_THAN:.0f} seconds")
    return value


def msisdn_argument(value: str) -> str:
    canonical = canonical_msisdn(normalise_compact(value))
    if canonical is None:
        raise click.BadParameter(f"{value!r} is not a mobile number")
    return canonical


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smsgw")
def main() -> None:
    """smsgw: an SMS gateway command processor.

    Subscribers text commands to short codes (credit transfer at 1112, bank-card OTP at
    7000); smsgw answers by SMS over SMPP. Start with `smsgw demo`.
    """


@main.command()
@common_options
@click.option("--language", type=click.Choice(["fa", "en"]), default=None,
              help="Reply language of the demo subscribers.")
def demo(config_file: Path | None, redis_url: str | None, language: str | None) -> None:
    """Play a scripted conversation through the whole gateway and print it as a chat.

    Starts the fake SMSC, the gateway and the embedded store in this one process: a
    transfer with both confirmations, a PIN change, a lockout and an operator unblock,
    a bad format. The first thing to run.
    """
    from smsgw.commands.demo import run_demo

    settings = load(config_file, redis_url)
    sys.exit(run_async(run_demo(settings, language)))


@main.command()
@common_options
def run(config_file: Path | None, redis_url: str | None) -> None:
    """Run the gateway: bind to the SMSC in the config and serve until SIGTERM/SIGINT.

    On a signal it stops taking messages, finishes those in flight, sends queued replies,
    unbinds and exits 0. Needs a real hash key (SMSGW_SECURITY_HASH_KEY) and, for real
    work, Redis (--redis or SMSGW_REDIS_URL).
    """
    from smsgw.commands.run import serve

    settings = load(config_file, redis_url, strict_key=True)
    sys.exit(run_async(serve(settings)))


@main.command(name="fake-smsc")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2775, show_default=True, type=int)
@click.option("--system-id", default=None, help="Accept only this system_id (default: any).")
@click.option("--password", default=None, help="Accept only this password (default: any).")
def fake_smsc(host: str, port: int, system_id: str | None, password: str | None) -> None:
    """A standalone fake SMSC (SMPP 3.4 server) for development and load tests.

    Prints each MT it receives. Type (or pipe) MO messages as lines `FROM TO TEXT`; each is
    delivered to a bound gateway until it is answered. Stops on SIGINT/SIGTERM.
    """
    from smsgw.commands.fake_smsc import serve_fake_smsc

    configure_logging("console")
    sys.exit(asyncio.run(serve_fake_smsc(host, port, system_id, password)))


@main.command()
@common_options
@click.argument("log", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where the replies go (a message log). Default: stdout.")
@click.option("--subscribers", "subscriber_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A subscriber CSV to load first (new subscribers only; known ones keep "
                   "their balance).")
@click.option("--compare", is_flag=True,
              help="Report every inbound record whose replies now differ from the replies "
                   "recorded in the log.")
@click.option("--strict", is_flag=True, help="Exit 2 if any line is malformed.")
def replay(config_file: Path | None, redis_url: str | None, log: str, out_file: Path | None,
           subscriber_file: Path | None, compare: bool, strict: bool) -> None:
    """Feed a message log's inbound records through the router, clocked by each `ts`.

    Replies are written as a message log. Replaying the same log twice against the same
    store applies nothing twice. Malformed lines are reported on stderr and skipped.
    """
    from smsgw.commands.replay import run_replay

    settings = load(config_file, redis_url)
    status = run_async(run_replay(settings, log, out_file, subscriber_file, compare, strict))
    sys.exit(status)


@main.command()
@common_options
@click.option("--rate", default=500.0, show_default=True, type=click.FloatRange(min=1),
              help="Commands injected per second (open loop).")
@click.option("--duration", default=10.0, show_default=True,
              type=click.FloatRange(min=1, max=3600), help="Seconds of injection.")
@click.option("--population", default=2000, show_default=True,
              type=click.IntRange(min=10, max=1_000_000), help="Synthetic subscribers.")
@click.option("--mix", default=None, metavar="KIND=SHARE,...",
              help="Shares of transfer, wrong_pin, bad_format, limit, pin_change, otp "
                   "(default: transfer=80 and 4 of each other).")
@click.option("--gateway", "gateway_mode", type=click.Choice(["inprocess", "spawn", "external"]),
              default="inprocess", show_default=True,
              help="inprocess: in this process; spawn: start `smsgw run` as its own process; "
                   "external: wait for a gateway you start to bind to --listen.")
@click.option("--listen", "listen_port", default=0, type=click.IntRange(min=0, max=65535),
              help="Port of the fake SMSC (loopback; default: any free port).")
@click.option("--smsc", "smsc_address", default=None, metavar="HOST:PORT",
              help="Use a running `smsgw fake-smsc` (with a gateway bound to it) instead of "
                   "starting one: the driver binds to it as system_id 'loadtest'. Needs "
                   "--redis (the gateway's store).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the results as one JSON object.")
@click.option("--seed", default=1, show_default=True, help="Seed of the command mix.")
@click.option("--gateways", default=1, show_default=True, type=click.IntRange(min=1, max=16),
              help="With --gateway spawn: this many `smsgw run` processes, each on its own "
                   "bind, sharing --redis, in one order per subscriber across them.")
def loadtest(config_file: Path | None, redis_url: str | None, rate: float, duration: float,
             population: int, mix: str | None, gateway_mode: str, listen_port: int,
             smsc_address: str | None, json_file: Path | None, seed: int,
             gateways: int) -> None:
    """Drive a gateway through the fake SMSC at a target rate, and measure it.

    Loads synthetic subscribers (0936 900 0000 and up; earlier runs' leftovers in that
    range are removed first), injects a realistic mix for --duration seconds on loopback,
    shows progress, then prints throughput, latency percentiles (MO injected to its last
    reply), errors by kind and the money check.
    """
    from smsgw.commands.loadtest import (
        DEFAULT_MIX,
        LoadTestOptions,
        Progress,
        parse_mix,
        run_loadtest,
    )

    settings = load(config_file, redis_url)
    if settings.security.is_development_key:  # a throwaway key for this run's population
        settings = settings.model_copy(update={"security": settings.security.model_copy(
            update={"hash_key": secrets.token_hex(16)})})
    try:
        shares = parse_mix(mix or DEFAULT_MIX)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mix") from exc
    if gateways > 1 and gateway_mode != "spawn":
        raise click.UsageError("--gateways N needs --gateway spawn")
    options = LoadTestOptions(rate, duration, population, shares, gateway_mode, listen_port,
                              seed, smsc=_host_port(smsc_address) if smsc_address else None,
                              gateways=gateways)
    try:
        results = run_async(run_loadtest(settings, options, Progress()))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    summary = results.as_json()
    click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    if results.overloaded:
        click.echo(f"overloaded: {results.errors['unanswered']:,} commands unanswered and "
                   f"{results.errors['not_sent_backlog']:,} not sent at {rate:,.0f}/s: the "
                   "gateway did not keep up, so these figures describe an overload; try a "
                   "lower --rate for a sustained one", err=True)
    if json_file is not None:
        json_file.write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--smsc")
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise click.BadParameter("load tests send traffic to loopback only", param_hint="--smsc")
    return host, int(port)


@main.group(name="admin")
def admin_group() -> None:
    """Operator actions: subscribers, unblock, PIN reset, top-up, history, cards.

    Give --redis (or SMSGW_REDIS_URL): the embedded store is empty in a new process.
    """


def admin_command(name: str) -> Callable[[F], F]:
    def wrap(function: F) -> F:
        return admin_group.command(name=name)(common_options(function))  # type: ignore[return-value]
    return wrap


@admin_command("load-subscribers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True,
              help="Also overwrite the balance and bill of known subscribers.")
def load_subscribers_command(config_file: Path | None, redis_url: str | None, file: Path,
                             replace: bool) -> None:
    """Add new subscribers from a CSV (msisdn,plan,balance,bill,language); update plan and
    language of known ones. A bad row loads nothing."""
    settings = load(config_file, redis_url)
    try:
        rows = read_subscriber_file(file)
    except BadInputFile as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    report = run_async(with_app(settings, lambda app: admin.load_subscribers(
        app.store, rows, replace, now())))
    click.echo(f"loaded {len(rows)} rows: {report.added} added, {report.updated} updated, "
               f"{report.replaced} replaced")


@admin_command("show")
@click.argument("msisdn", callback=lambda _c, _p, v: msisdn_argument(v))
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--at", "at_text", default=None, metavar="TS",
              help="Count sent_today / sent_this_month for this ISO time instead of now.")
def show_command(config_file: Path | None, redis_url: str | None, msisdn: str, as_json: bool,
                 at_text: str | None) -> None:
    """A subscriber's plan, balance or bill, PIN state, strikes and what they sent."""
    settings = load(config_file, redis_url)
    at = moment_argument(at_text) if at_text else now()
    try:
        data = run_async(with_app(settings, lambda app: admin.show(
            app.store, msisdn, at, settings.transfer)))
    except admin.UnknownSubscriber as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    for key, value in data.items():
        click.echo(f"{key:20} {value}")


def _care_command(name: str, action: str, doc: str) -> None:
    @admin_command(name)
    @click.argument("msisdn", callback=lambda _c, _p, v: msisdn_argument(v))
    def command(config_file: Path | None, redis_url: str | None, msisdn: str) -> None:
        settings = load(config_file, redis_url)
        _run_care(settings, msisdn, action, 0)
        click.echo(f"{name}: done for {msisdn}")

    command.__doc__ = doc


def _run_care(settings: Settings, msisdn: str, action: str, amount: int) -> dict[str, Any]:
    try:
        return run_async(with_app(settings, lambda app: admin.care(
            app.store, msisdn, action, now(), amount)))
    except admin.UnknownSubscriber as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except admin.CareRefused as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT if exc.bad_input else EXIT_FAILED)


_care_command("unblock", "unblock",
              "Lift a PIN lockout: strikes back to 0, the PIN is kept.")
_care_command("reset-pin", "reset_pin",
              "Forget the subscriber's PIN; the next successful transfer sets a new one.")


def topup_amount(value: str) -> int:
    try:
        amount = parse_rials(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if amount < 1:
        raise click.BadParameter(f"{shown(value)}: a top-up is at least 1 rial")
    return amount


@admin_command("topup")
@click.argument("msisdn", callback=lambda _c, _p, v: msisdn_argument(v))
@click.argument("amount", callback=lambda _c, _p, v: topup_amount(v))
def topup_command(config_file: Path | None, redis_url: str | None, msisdn: str,
                  amount: int) -> None:
    """Prepaid: credit goes up by AMOUNT rials. Postpaid: the bill goes down by AMOUNT.

    AMOUNT: 1 to 10^15 rials, in any digits (20000, 20,000, ۲۰٬۰۰۰); a top-up that would
    take the balance or bill beyond 10^15 is refused and changes nothing."""
    settings = load(config_file, redis_url)
    result = _run_care(settings, msisdn, "topup", amount)
    shown = f"balance {result['balance']}" if "balance" in result else f"bill {result['bill']}"
    click.echo(f"topup: {amount} rials for {msisdn}; {shown}")


@admin_command("recover")
@click.option("--older-than", default=30.0, show_default=True, type=float,
              callback=lambda _c, _p, v: finite_seconds(v),
              metavar="SECONDS", help="Leave younger transfers to the gateway handling them.")
def recover_command(config_file: Path | None, redis_url: str | None, older_than: float) -> None:
    """Finish transfers left half-done by a crash (Redis Cluster, journaled transfers).

    Each transfer still in a sender's journal is credited to its recipient (once) and
    settled, or reversed (everything back to the sender) when the recipient can't be
    credited. `smsgw run` does this by itself every minute; this is for an operator who
    wants it now. It scans the whole keyspace (the gateway's minutely pass reads the
    journal index instead), so it also finds journals written before the index existed.
    Safe to run at any time, from anywhere, as often as wanted.
    """
    settings = load(config_file, redis_url)
    counts = run_async(with_app(settings, lambda app: app.transfer.recover(
        now(), older_than_seconds=older_than, full=True)))
    shown = ", ".join(f"{kind} {counts[kind]}"
                      for kind in ("settled", "reversed", "gone", "stuck", "young")
                      if counts[kind])
    click.echo(f"recover: {shown or 'nothing left half-done'}")


@admin_command("history")
@click.argument("who")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, newest first.")
@click.option("--limit", default=50, show_default=True,
              type=click.IntRange(min=1), callback=lambda _c, _p, v: min(v, HISTORY_LENGTH),
              help=f"At most this many (all that is kept: {HISTORY_LENGTH}).")
def history_command(config_file: Path | None, redis_url: str | None, who: str,
                    as_json: bool, limit: int) -> None:
    """What happened to a subscriber (MSISDN) or a card (16 digits), newest first.

    Transfers, strikes, care actions, OTPs sent and their delivery receipts; for a card,
    branch actions, OTPs issued, used and voided, static-password payments.
    """
    settings = load(config_file, redis_url)
    card = normalise_card(who)
    if len(card) == CARD_DIGITS:
        card_argument(card)
        entries = run_async(with_app(settings, lambda app: app.store.card_history(
            app.hasher.card_digest(card), limit)))
    else:
        msisdn = msisdn_argument(who)
        entries = run_async(with_app(settings, lambda app: app.store.history(msisdn, limit)))
    for entry in entries:
        if as_json:
            click.echo(json.dumps(entry, ensure_ascii=False))
        else:
            rest = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("at", "kind"))
            click.echo(f"{entry.get('at', '')}  {entry.get('kind', ''):14} {rest}")


def card_argument(value: str) -> str:
    number = normalise_card(value)
    problem = card_problem(number)
    if problem is not None:
        raise click.BadParameter(problem)
    return number


def card_param(function: F) -> F:
    return click.argument("card", callback=lambda _c, _p, v: card_argument(v))(function)


@admin_group.group(name="card")
def card_group() -> None:
    """Bank cards for the OTP service (branch and care staff). Cards are stored only as
    keyed hashes and shown by their last four digits."""


def card_command(name: str) -> Callable[[F], F]:
    def wrap(function: F) -> F:
        return card_group.command(name=name)(common_options(function))  # type: ignore[return-value]
    return wrap


def _run_card(settings: Settings, work: Callable[[App], Awaitable[T]]) -> T:
    try:
        return run_async(with_app(settings, work))
    except admin.CardProblem as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)


def read_secret(prompt: str, option: str) -> str:
    """A secret from standard input: on a terminal typed without echo, twice; else the
    first line of what is piped in."""
    if sys.stdin is None:  # started with standard input closed
        raise click.BadParameter("there is no standard input to read it from",
                                 param_hint=option)
    if not sys.stdin.isatty():
        try:
            return sys.stdin.readline().rstrip("\r\n")
        except UnicodeDecodeError:
            raise click.BadParameter("standard input is not UTF-8 text",
                                     param_hint=option) from None
    try:
        first = getpass.getpass(f"{prompt}: ")
        again = getpass.getpass(f"{prompt} (again): ")
    except EOFError:
        raise click.BadParameter("nothing was typed", param_hint=option) from None
    if first != again:
        raise click.BadParameter("the two entries differ", param_hint=option)
    return first


@card_command("add")
@card_param
@click.option("--mobile", required=True, callback=lambda _c, _p, v: msisdn_argument(v),
              help="The mobile number the branch verified; OTPs go only there.")
@click.option("--type", "card_type", type=click.Choice(["debit", "credit"]), required=True)
@click.option("--static-password", required=True, metavar="PW",
              help="The card's static second password; '-' reads it from standard input "
                   "(keeps it out of shell history).")
def card_add_command(config_file: Path | None, redis_url: str | None, card: str, mobile: str,
                     card_type: str, static_password: str) -> None:
    """Register a card of the bank's (BIN from [otp] bins), with its verified mobile."""
    settings = load(config_file, redis_url)
    if not is_our_card(card, settings.otp.bins):
        raise click.BadParameter(f"not one of the bank's cards (BINs {settings.otp.bins})",
                                 param_hint="CARD")
    if static_password == "-":
        static_password = read_secret("Static password", "--static-password")
    if not 4 <= len(static_password) <= 32:
        raise click.BadParameter("must be 4 to 32 characters", param_hint="--static-password")
    if not static_password.isprintable():  # no control character, no undecodable byte
        raise click.BadParameter("must be printable text",
                                 param_hint="--static-password")
    _run_card(settings, lambda app: admin.card_add(app.store, app.hasher, card, mobile,
                                                    card_type, static_password, now()))
    click.echo(f"card …{card[-4:]} registered for {mobile}")


@card_command("set-mobile")
@card_param
@click.argument("msisdn", callback=lambda _c, _p, v: msisdn_argument(v))
def card_set_mobile_command(config_file: Path | None, redis_url: str | None, card: str,
                            msisdn: str) -> None:
    """Change the card's registered mobile (after a branch checked identity); any live OTP
    is voided."""
    settings = load(config_file, redis_url)
    _run_card(settings, lambda app: admin.card_action(app.store, app.hasher, card,
                                                       "set_mobile", now(), mobile=msisdn))
    click.echo(f"card …{card[-4:]}: mobile is now {msisdn}")


def _card_state_command(name: str, action: str, doc: str) -> None:
    @card_command(name)
    @card_param
    def command(config_file: Path | None, redis_url: str | None, card: str) -> None:
        settings = load(config_file, redis_url)
        _run_card(settings, lambda app: admin.card_action(app.store, app.hasher, card,
                                                           action, now()))
        click.echo(f"card …{card[-4:]}: {action}d")

    command.__doc__ = doc


_card_state_command("disable", "disable",
                    "Turn off the card's internet password: no OTP, no payment approved.")
_card_state_command("block", "block", "Block the card (lost or stolen): no OTP, no payment.")


@card_command("show")
@card_param
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def card_show_command(config_file: Path | None, redis_url: str | None, card: str,
                      as_json: bool) -> None:
    """Last four digits, type, mobile and state of a card."""
    settings = load(config_file, redis_url)
    data = _run_card(settings, lambda app: admin.card_show(app.store, app.hasher, card))
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    for key, value in data.items():
        click.echo(f"{key:10} {value}")
