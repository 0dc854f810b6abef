"""The transport ceiling: an ESME on smsgw's own SMPP client that answers every MO with the
same two MT a transfer gets (same lengths, same parts), and does nothing else."""

from __future__ import annotations

import asyncio
import base64
import itertools
import signal
import sys

from smsgw.config import SmscSettings
from smsgw.core.replies import show_number
from smsgw.core.text import canonical_msisdn
from smsgw.transport.smpp.client import OnAnswerSafe, Receipt, SmppClient, WireMessage
from smsgw.transport.smpp.pdu import ESME_ROK

SENDER_TEXT = ("انتقال ۱٬۰۰۰ ریال از {sender} به {recipient} انجام شد.\n"
               "کارمزد ۵۰۰، موجودی ۹٬۹۹۸٬۵۰۰ ریال\n۱۴۰۵/۰۹/۰۲ ۰۴:۲۱ کد {ref}")
RECIPIENT_TEXT = "۱٬۰۰۰ ریال از {sender} به شارژ {recipient} رسید\n۱۴۰۵/۰۹/۰۲ ۰۴:۲۱"


class Echo:
    def __init__(self, client: SmppClient) -> None:
        self.client = client
        self._refs = itertools.count(1)

    async def on_message(self, message: WireMessage,
                         session: str) -> tuple[int, OnAnswerSafe | None]:
        ref = base64.b32encode(next(self._refs).to_bytes(5, "big")).decode()
        recipient = canonical_msisdn(message.text.split(":")[0]) or message.source
        numbers = {"sender": show_number(message.source, "fa"),
                   "recipient": show_number(recipient, "fa")}
        self.client.submit_nowait(message.destination, message.source,
                                  SENDER_TEXT.format(ref=ref, **numbers))
        self.client.submit_nowait(message.destination, recipient,
                                  RECIPIENT_TEXT.format(**numbers))
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
