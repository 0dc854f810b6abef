"""The peer in the same run: Kannel (Debian's `kannel` package, bearerbox + smsbox) bound
to our fake SMSC as an ESME, answering every MO with a fixed text (no state, no store, one
reply: the cheapest thing a gateway can do), with the settings that notes/peers.md found
fastest (log level 3, 1,000 pending submits, 500 pending in smsbox). Same driver, same
fake SMSC, same latency rule as the other rows.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

from smsgw.testing import free_port

CONFIG = """
group = core
admin-port = {admin}
admin-password = bench
smsbox-port = {smsbox}
box-allow-ip = 127.0.0.1
log-level = 3
log-file = "{dir}/bearerbox.log"
access-log = "/dev/null"
smsbox-max-pending = 500
store-type = spool
store-location = "{dir}/spool"

group = smsc
smsc = smpp
smsc-id = fake
host = 127.0.0.1
port = {smsc}
transceiver-mode = true
smsc-username = kannel
smsc-password = bench
system-type = ""
max-pending-submits = 1000
enquire-link-interval = 30

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
log-level = 3
log-file = "{dir}/smsbox.log"
access-log = "/dev/null"

group = sms-service
keyword = default
text = "ok"
catch-all = true
max-messages = 1
"""


def available() -> bool:
    return shutil.which("bearerbox") is not None and shutil.which("smsbox") is not None



class Kannel:
    """bearerbox and smsbox, configured to bind to the fake SMSC on `smsc_port`."""

    def __init__(self, smsc_port: int) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="smsgw-kannel-"))
        (self._dir / "spool").mkdir()
        self._conf = self._dir / "kannel.conf"
        self._conf.write_text(CONFIG.format(admin=free_port(), smsbox=free_port(),
                                            smsc=smsc_port, dir=self._dir))
        self._processes: list[subprocess.Popen[bytes]] = []

    async def start(self) -> None:
        for program in ("bearerbox", "smsbox"):
            self._processes.append(subprocess.Popen(
                [program, str(self._conf)], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            await asyncio.sleep(1.0)  # smsbox connects to bearerbox once it listens

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    async def stop(self) -> None:
        for process in reversed(self._processes):
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self._dir, ignore_errors=True)
