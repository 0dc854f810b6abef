"""`smsgw admin`: operator actions on subscribers and transfers (cards: admin_card.py).

Each subcommand is a function here; the operator actions themselves are smsgw/admin.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from smsgw import admin, audit
from smsgw.commands.options import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    F,
    card_argument,
    config_options,
    finite_seconds,
    load,
    moment_argument,
    msisdn_argument,
    reason_option,
    run_async,
    with_app,
)
from smsgw.config import Settings
from smsgw.core.clock import now
from smsgw.core.money import parse_rials, shown
from smsgw.core.text import normalise_compact
from smsgw.services.otp.cards import CARD_DIGITS, normalise_card
from smsgw.store import HISTORY_LENGTH
from smsgw.subscribers import BadInputFile, read_subscriber_file
from smsgw.transport.outbox import listing


@click.group(name="admin")
def group() -> None:
    """Operator actions: subscribers, unblock, PIN reset, top-up, history, cards.

    Give --redis (or SMSGW_REDIS_URL): the embedded store is empty in a new process.
    """


def admin_command(name: str) -> Callable[[F], F]:
    def wrap(function: F) -> F:
        return group.command(name=name)(config_options(function))  # type: ignore[return-value]
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
    def command(config_file: Path | None, redis_url: str | None, msisdn: str,
                reason: audit.Actor) -> None:
        settings = load(config_file, redis_url)
        _run_care(settings, msisdn, action, 0, reason)
        click.echo(f"{name}: done for {msisdn}")

    command.__doc__ = doc  # before click reads it: the subcommand's help
    msisdn = click.argument("msisdn", callback=lambda _c, _p, v: msisdn_argument(v))
    admin_command(name)(msisdn(reason_option(command)))


def _run_care(settings: Settings, msisdn: str, action: str, amount: int,
              actor: audit.Actor) -> dict[str, Any]:
    try:
        return run_async(with_app(settings, lambda app: audit.care(
            app.store, settings.transfer, actor, msisdn, action, now(), amount)))
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
@reason_option
def topup_command(config_file: Path | None, redis_url: str | None, msisdn: str,
                  amount: int, reason: audit.Actor) -> None:
    """Prepaid: credit goes up by AMOUNT rials. Postpaid: the bill goes down by AMOUNT.

    AMOUNT: 1 to 10^15 rials, in any digits (20000, 20,000, ۲۰٬۰۰۰); a top-up that would
    take the balance or bill beyond 10^15 is refused and changes nothing."""
    settings = load(config_file, redis_url)
    result = _run_care(settings, msisdn, "topup", amount, reason)
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


@admin_command("outbox")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, oldest first.")
def outbox_command(config_file: Path | None, redis_url: str | None, as_json: bool) -> None:
    """The replies waiting in the outbox for the SMSC to take them, oldest first: to,
    kind, age, the gateway sending it, and the text masked as in the message log."""
    settings = load(config_file, redis_url)
    rows = run_async(with_app(settings, lambda app: listing(
        app.store, app.hasher, app.settings, render=app.router.replies_for)))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    click.echo(f"{len(rows)} replies waiting")
    for row in rows:
        click.echo(f"{row['age_seconds']:>9.1f}s  {row['to']:14} {row['kind']:22} "
                   f"{row['owner']:24} {row['text']}")


@admin_command("audit")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, oldest first.")
@click.option("--subject", default=None, metavar="MSISDN",
              help="Only this subscriber (any number form), or a card by its last four "
                   "digits.")
def audit_command(config_file: Path | None, redis_url: str | None, as_json: bool,
                  subject: str | None) -> None:
    """The audit trail: every action by a person (console or admin), oldest first."""
    settings = load(config_file, redis_url)
    wanted = _audit_subject(subject) if subject is not None else None
    entries = run_async(with_app(settings, lambda app: audit.trail(app.store, wanted)))
    for entry in entries:
        if as_json:
            click.echo(json.dumps(entry, ensure_ascii=False))
            continue
        changes = " ".join(f"{key}:{entry['before'].get(key)}->{value}"
                           for key, value in entry["after"].items()
                           if entry["before"].get(key) != value)
        click.echo(f"{entry['at']}  {entry['who']:16} {entry['action']:16} "
                   f"{entry['subject']:14} {changes}  reason={entry['reason']!r}")


def _audit_subject(value: str) -> str:
    digits = normalise_compact(value).lstrip("…")
    if len(digits) == 4 and digits.isascii() and digits.isdigit():
        return audit.card_subject(digits)
    return msisdn_argument(value)
