"""What every command shares: --config and --redis, loading the settings, running a
coroutine, the app around a piece of work, exit statuses, and argument checks."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from smsgw import audit
from smsgw.app import App, build_app
from smsgw.config import ConfigError, Settings, load_settings
from smsgw.core.clock import parse_timestamp
from smsgw.core.money import shown
from smsgw.core.text import canonical_msisdn, normalise_compact
from smsgw.observability.logs import configure_logging, get_logger
from smsgw.services.otp.cards import card_problem, normalise_card
from smsgw.store import StoreUnavailable, WrongStoreMode

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
MAX_OLDER_THAN = 10 * 365 * 24 * 3600.0  # seconds: ten years
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def config_options(command: F) -> F:
    """--config and --redis, on every command that uses the store."""
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
    """The settings of --config and --redis; logging configured by them."""
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


def card_argument(value: str) -> str:
    number = normalise_card(value)
    problem = card_problem(number)
    if problem is not None:
        raise click.BadParameter(problem)
    return number


def reason_option(function: F) -> F:
    """--reason TEXT: why a person acts, kept in the audit trail with their OS user."""
    return click.option(
        "--reason", default="", metavar="TEXT", callback=lambda _c, _p, v: _actor(v),
        help="Why (kept in the audit trail with your OS user name).")(function)


def _actor(reason: str) -> audit.Actor:
    try:
        return audit.cli_actor(reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reason") from exc
