"""`smsgw admin user`: the operator console's people and their roles."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from smsgw import audit
from smsgw.app import App
from smsgw.commands.options import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    F,
    config_options,
    load,
    reason_option,
    run_async,
    with_app,
)
from smsgw.core.clock import now


@click.group(name="user")
def group() -> None:
    """The operator console's people and their roles (viewer, care, supervisor)."""


def user_command(name: str) -> Callable[[F], F]:
    def wrap(function: F) -> F:
        return group.command(name=name)(config_options(function))  # type: ignore[return-value]
    return wrap


@user_command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "care", "supervisor"]), required=True,
              help="viewer: status and look-ups; care: also unblock, reset PINs, disable "
                   "and block cards; supervisor: also top up and set a card's mobile.")
@reason_option
def user_add_command(config_file: Path | None, redis_url: str | None, name: str, role: str,
                     reason: audit.Actor) -> None:
    """Add a person (or set a known one's role and password). The password is read from
    standard input (without echo on a terminal), never from the command line."""
    from smsgw.console.people import BadUser, People, check_new_user

    password = _read_password()
    try:
        name = check_new_user(name, role, password)
    except BadUser as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    settings = load(config_file, redis_url)

    async def work(app: App) -> bool:
        added = await People(app.store).add(name, role, password, now().isoformat())
        await audit.record(app.store, reason, "user_add" if added else "user_change",
                           f"user:{name}", now(), {}, {"role": role})
        return added

    added = run_async(with_app(settings, work))
    click.echo(f"user {name}: {'added' if added else 'updated'}, role {role}")


def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            click.echo("error: the two passwords differ", err=True)
            sys.exit(EXIT_BAD_INPUT)
        return password
    return sys.stdin.readline().rstrip("\r\n")


@user_command("remove")
@click.argument("name")
@reason_option
def user_remove_command(config_file: Path | None, redis_url: str | None, name: str,
                        reason: audit.Actor) -> None:
    """Remove a person; their open sessions end at their next request."""
    from smsgw.console.people import People, normalise_name

    settings = load(config_file, redis_url)
    name = normalise_name(name)

    async def work(app: App) -> bool:
        removed = await People(app.store).remove(name)
        if removed:
            await audit.record(app.store, reason, "user_remove", f"user:{name}", now(),
                               {}, {})
        return removed

    if not run_async(with_app(settings, work)):
        click.echo(f"error: no user {name}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"user {name}: removed")


@user_command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def user_list_command(config_file: Path | None, redis_url: str | None, as_json: bool) -> None:
    """The console's people: name, role, when added."""
    from smsgw.console.people import People

    settings = load(config_file, redis_url)
    people = run_async(with_app(settings, lambda app: People(app.store).all()))
    if as_json:
        click.echo(json.dumps([{"name": p.name, "role": p.role, "created": p.created}
                               for p in people]))
        return
    for person in people:
        click.echo(f"{person.name:32} {person.role:10} {person.created}")
