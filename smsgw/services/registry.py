"""The one list of services: the app builds them from it, the router routes to them, the
demo plays their lines and the load test draws its kinds of traffic from it.

Adding a service is a folder of its own under services/ with a `plugin.py`, and one line
here (README, "Adding a service").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smsgw.config import Settings
from smsgw.core.hashing import Hasher
from smsgw.services import Service
from smsgw.store import Store

if TYPE_CHECKING:
    from smsgw.testing.load import Command, Traffic


@dataclass(frozen=True)
class Context:
    """What a service is built from."""

    settings: Settings
    store: Store
    hasher: Hasher


# One synthetic command of a kind, for the load test: drawn from its Traffic (the
# population, the random source, the subscribers' PINs).
LoadKind = Callable[["Traffic"], "Command"]


@dataclass(frozen=True)
class ServicePlugin:
    name: str  # its settings table ([name] in config/smsgw.toml) and its name here
    build: Callable[[Context], Service]
    # (text, note): what the demo's first subscriber sends to its short code
    demo_lines: tuple[tuple[str, str], ...] = ()
    load_kinds: Mapping[str, LoadKind] = field(default_factory=dict)


def plugins() -> tuple[ServicePlugin, ...]:
    """Every service, in the order they are built (imported here, when first asked for,
    so that a service's own modules may import the registry's types)."""
    from smsgw.services.account.plugin import PLUGIN as ACCOUNT
    from smsgw.services.otp.plugin import PLUGIN as OTP
    from smsgw.services.transfer.plugin import PLUGIN as TRANSFER

    return (TRANSFER, OTP, ACCOUNT)
