"""`smsgw console`: the operator console and GET /v1/status only, against a store (for
staff machines, away from the gateways)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click
from aiohttp import web

from smsgw.app import build_app
from smsgw.commands.options import config_options, load, run_async
from smsgw.config import Settings
from smsgw.console.web import mount
from smsgw.observability.logs import get_logger

log = get_logger("smsgw.console")
MAX_BODY_BYTES = 64 * 1024


async def serve_console(settings: Settings, host: str, port: int) -> int:
    app = build_app(settings)
    await app.store.check_mode()
    if app.store.embedded:
        log.warning("no Redis URL: the console shows the embedded store, empty and private "
                    "to this process; give --redis (the gateways' store)")
    http = web.Application(client_max_size=MAX_BODY_BYTES)

    async def home(_: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/console/")

    http.router.add_get("/", home)
    mount(http, app)
    runner = web.AppRunner(http, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("console listening", url=f"http://{host}:{port}/console/")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    await app.close()
    return 0


@click.command(name="console")
@config_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=click.IntRange(min=1, max=65535))
def command(config_file: Path | None, redis_url: str | None, host: str, port: int) -> None:
    """Serve only the operator console (/console/) and GET /v1/status, against the store
    (--redis: the gateways' store), for staff machines. Add people with
    `smsgw admin user add`. Put TLS in front of it, as for `smsgw run`."""
    settings = load(config_file, redis_url)
    sys.exit(run_async(serve_console(settings, host, port)))
