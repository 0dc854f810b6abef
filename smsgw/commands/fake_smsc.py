"""`smsgw fake-smsc`: the fake SMSC as a program. Prints each MT; MO lines from stdin."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

import click

from smsgw.core.text import national_form
from smsgw.observability.logs import configure_logging
from smsgw.transport.smpp.fake_smsc import FakeSmsc, Mt

HELP = "type an MO as: FROM TO TEXT   (e.g. 09361111111 1112 09351234567:1000:12345)"


@click.command(name="fake-smsc")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2775, show_default=True, type=int)
@click.option("--system-id", default=None, help="Accept only this system_id (default: any).")
@click.option("--password", default=None, help="Accept only this password (default: any).")
def command(host: str, port: int, system_id: str | None, password: str | None) -> None:
    """A standalone fake SMSC (SMPP 3.4 server) for development and load tests.

    Prints each MT it receives. Type (or pipe) MO messages as lines `FROM TO TEXT`; each is
    delivered to a bound gateway until it is answered. Stops on SIGINT/SIGTERM.
    """
    configure_logging("console")
    sys.exit(asyncio.run(serve_fake_smsc(host, port, system_id, password)))


async def serve_fake_smsc(host: str, port: int, system_id: str | None,
                          password: str | None) -> int:
    smsc = FakeSmsc(host, port, system_id=system_id, password=password)
    smsc.on_mt.append(_print_mt)
    await smsc.start()
    print(f"fake SMSC listening on {host}:{smsc.port}; {HELP}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reader = asyncio.create_task(_read_mo_lines(smsc, stop))
    await stop.wait()
    reader.cancel()
    await smsc.stop()
    return 0


def _print_mt(mt: Mt) -> None:
    text = mt.text.replace("\n", " / ")
    print(f"MT {mt.source} -> {national_form(mt.destination)} [{mt.data_coding}, "
          f"{mt.parts} part(s)]: {text}", flush=True)


async def _read_mo_lines(smsc: FakeSmsc, stop: asyncio.Event) -> None:
    # A daemon thread, not the default executor: a read blocked on stdin must not keep
    # the process alive after a signal.
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)

    threading.Thread(target=pump, daemon=True, name="stdin").start()
    while True:
        parts = (await lines.get()).strip().split(maxsplit=2)
        if len(parts) < 3:
            if parts:
                print(f"? {HELP}", flush=True)
            continue
        mo = smsc.inject_mo(parts[0], parts[1], parts[2])
        print(f"MO {mo.id} queued: {parts[0]} -> {parts[1]}: {parts[2]}", flush=True)
