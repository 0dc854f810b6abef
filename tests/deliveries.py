"""What the HTTP API's tests hand it as `deliver` (it awaits the SMS being durable)."""

from __future__ import annotations

from smsgw.messages import Outbound
from smsgw.transport.http_api import Deliver


async def dropped(_: list[Outbound], __: list[Outbound]) -> None:
    """Sends nothing (the test looks only at the HTTP answers)."""


def kept_in(sent: list[Outbound]) -> Deliver:
    """Keeps what would be sent in `sent` (not the decoys)."""
    async def deliver(messages: list[Outbound], _: list[Outbound]) -> None:
        sent.extend(messages)
    return deliver
