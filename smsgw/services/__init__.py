"""Services: the rules of each short code. A service takes an Inbound, returns Outbounds."""

from __future__ import annotations

from typing import Protocol

from smsgw.messages import Inbound, Outbound


class Service(Protocol):
    short_code: str

    async def handle(self, message: Inbound) -> list[Outbound]: ...

    def loggable_text(self, message: Inbound) -> str:
        """The inbound text with every secret masked, for the message log."""
        ...
