"""The bank card OTP in the registry (services/registry.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smsgw.services.otp.events import OtpEvents
from smsgw.services.otp.service import OtpService
from smsgw.services.registry import Context, ServicePlugin

if TYPE_CHECKING:
    from smsgw.testing.load import Command, Traffic


def build(context: Context) -> OtpService:
    settings = context.settings
    events = OtpEvents(context.store, enabled=bool(settings.otp.webhook_url))
    return OtpService(settings.otp, settings.transfer.timezone, context.store,
                      context.hasher, settings.replies.language, events)


def otp_request(traffic: Traffic) -> Command:
    from smsgw.testing.load import Command

    rng = traffic.rng
    return Command(rng.choice(traffic.population.card_holders), "7000",
                   rng.choice(["OTP", "otp", "رمز پویا", "Otp"]))


PLUGIN = ServicePlugin(name="otp", build=build, load_kinds={"otp": otp_request})
