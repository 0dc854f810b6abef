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
#
# And whether its replies can be rendered again from its command script's outcome, with
#     def replies_for(self, message: Inbound, outcome: dict) -> list[Outbound]
# (`message` as the log shows it, PIN tokens in place of PINs). A service that declares it
# has its replies kept in the outbox by its command script itself (store/script.py's
# envelope): no second store call per message. Only for replies without secrets, each a
# function of the message and the outcome alone.
