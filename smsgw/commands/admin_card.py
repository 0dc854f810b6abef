"""`smsgw admin card`: bank cards for the OTP service (branch and care staff)."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

from smsgw import admin, audit
from smsgw.app import App
from smsgw.commands.options import (
    EXIT_FAILED,
    F,
    T,
    card_argument,
    config_options,
    load,
    msisdn_argument,
    reason_option,
    run_async,
    with_app,
)
from smsgw.config import Settings
from smsgw.core.clock import now
from smsgw.services.otp.cards import is_our_card


def card_param(function: F) -> F:
    return click.argument("card", callback=lambda _c, _p, v: card_argument(v))(function)


@click.group(name="card")
def group() -> None:
    """Bank cards for the OTP service (branch and care staff). Cards are stored only as
    keyed hashes and shown by their last four digits."""


def card_command(name: str) -> Callable[[F], F]:
    def wrap(function: F) -> F:
        return group.command(name=name)(config_options(function))  # type: ignore[return-value]
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
@reason_option
def card_add_command(config_file: Path | None, redis_url: str | None, card: str, mobile: str,
                     card_type: str, static_password: str, reason: audit.Actor) -> None:
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
    _run_card(settings, lambda app: audit.card_add(app.store, app.hasher, reason, card, mobile,
                                                    card_type, static_password, now()))
    click.echo(f"card …{card[-4:]} registered for {mobile}")


@card_command("set-mobile")
@card_param
@click.argument("msisdn", callback=lambda _c, _p, v: msisdn_argument(v))
@reason_option
def card_set_mobile_command(config_file: Path | None, redis_url: str | None, card: str,
                            msisdn: str, reason: audit.Actor) -> None:
    """Change the card's registered mobile (after a branch checked identity); any live OTP
    is voided."""
    settings = load(config_file, redis_url)
    _run_card(settings, lambda app: audit.card(app.store, reason, app.hasher.card_digest(card),
                                                card[-4:], "set_mobile", now(), mobile=msisdn))
    click.echo(f"card …{card[-4:]}: mobile is now {msisdn}")


def _card_state_command(name: str, action: str, done: str, doc: str) -> None:
    def command(config_file: Path | None, redis_url: str | None, card: str,
                reason: audit.Actor) -> None:
        settings = load(config_file, redis_url)
        _run_card(settings, lambda app: audit.card(
            app.store, reason, app.hasher.card_digest(card), card[-4:], action, now()))
        click.echo(f"card …{card[-4:]}: {done}")

    command.__doc__ = doc  # before click reads it: the subcommand's help
    card_command(name)(card_param(reason_option(command)))


_card_state_command("disable", "disable", "disabled",
                    "Turn off the card's internet password: no OTP, no payment approved.")
_card_state_command("block", "block", "blocked",
                    "Block the card (lost or stolen): no OTP, no payment.")


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
