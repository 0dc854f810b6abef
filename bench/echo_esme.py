"""The transport ceiling: an ESME on smsgw's own SMPP client that answers every MO with
the two MT a transfer gets, rendered from smsgw's own templates with the MO's recipient
and amount (so the same lengths and parts: the sender's confirmation in 2 UCS2 parts,
the recipient's in 1, 3 submit_sm), and does nothing else: no store, no rules."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys

from smsgw.config import SmscSettings, TransferSettings
from smsgw.core.clock import now, show_moment
from smsgw.core.replies import show_money, show_number
from smsgw.core.text import canonical_msisdn, normalise_compact
from smsgw.services.transfer.service import TEMPLATES, transfer_ref
from smsgw.testing.load import START_BALANCE
from smsgw.transport.smpp.client import OnAnswerSafe, Receipt, SmppClient, WireMessage
from smsgw.transport.smpp.pdu import ESME_ROK

TRANSFER = TransferSettings()  # the shipped fee and time zone, as the gateway's
LANGUAGE = "fa"


class Echo:
    def __init__(self, client: SmppClient) -> None:
        self.client = client
        self._refs = itertools.count(1)

    async def on_message(self, message: WireMessage,
                         session: str) -> tuple[int, OnAnswerSafe | None]:
        fields = normalise_compact(message.text).split(":")
        recipient = canonical_msisdn(fields[0]) or message.source
        amount = fields[1].replace(",", "") if len(fields) > 1 else ""
        rials = int(amount) if amount.isdigit() and len(amount) < 16 else 1000
        values = {"amount": show_money(rials, LANGUAGE), "fee": show_money(TRANSFER.fee, LANGUAGE),
                  "balance": show_money(START_BALANCE - rials - TRANSFER.fee, LANGUAGE),
                  "sender": show_number(message.source, LANGUAGE),
                  "recipient": show_number(recipient, LANGUAGE),
                  "when": show_moment(now(), TRANSFER.timezone, LANGUAGE),
                  "ref": transfer_ref(f"{next(self._refs):010x}")}
        self.client.submit_nowait(message.destination, message.source,
                                  TEMPLATES.render(LANGUAGE, "transfer", "sent", **values))
        self.client.submit_nowait(message.destination, recipient, TEMPLATES.render(
            LANGUAGE, "transfer", "received_prepaid", **values))
        return ESME_ROK, None

    async def on_receipt(self, receipt: Receipt) -> None:
        return None


async def main(port: int) -> None:
    # submit_rate as bench/run.py's gateways
    client = SmppClient(SmscSettings(port=port, window=200, submit_rate=100_000), "")
    echo = Echo(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(client.run(echo))
    await stop.wait()
    await client.stop(2)
    await running


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
