"""The account enquiry in the registry (services/registry.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smsgw.services.account.demo import DEMO_LINES
from smsgw.services.account.service import AccountService
from smsgw.services.registry import ServicePlugin

if TYPE_CHECKING:
    from smsgw.testing.load import Command, Traffic

ENQUIRIES = ("BAL", "bal", "موجودی", "HIST", "hist", "گزارش", "Bal ")


def enquiry(traffic: Traffic) -> Command:
    from smsgw.testing.load import Command

    return Command(traffic.rng.choice(traffic.population.senders), "1113",
                   traffic.rng.choice(ENQUIRIES))


PLUGIN = ServicePlugin(
    name="account",
    build=lambda context: AccountService(context.settings, context.store),
    demo_lines=DEMO_LINES,
    load_kinds={"enquiry": enquiry},
)
