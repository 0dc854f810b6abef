"""Services: the rules of each short code. A service takes an Inbound, returns Outbounds."""

from __future__ import annotations

from typing import Protocol

from smsgw.messages import Inbound, Outbound


class Service(Protocol):
    short_code: str

    async def handle(self, message: Inbound) -> list[Outbound]: ...


# A service may also declare what of its texts a log may show:
#     def log_view(self, message: Inbound) -> Iterable[masking.Part]
# (smsgw/masking.py owns the rule; without a declaration every digit is hidden).
