"""`smsgw run`: the gateway process. Serves until SIGTERM/SIGINT, then drains and unbinds."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import click
from aiohttp import web
from redis.exceptions import RedisError

from smsgw.app import App, build_app
from smsgw.commands.options import EXIT_FAILED, EXIT_OK, config_options, load, run_async
from smsgw.config import Settings
from smsgw.console.web import mount as mount_console
from smsgw.core.backoff import Backoff
from smsgw.core.clock import now
from smsgw.observability.logs import get_logger
from smsgw.store import StoreUnavailable, WrongStoreMode
from smsgw.transport.gateway import Gateway
from smsgw.transport.http_api import make_app
from smsgw.transport.msglog import MessageLog
from smsgw.transport.smpp.client import SmppClient
from smsgw.workers.recovery import start_recovery
from smsgw.workers.webhooks import WebhookWorker

DURABILITY_CHECK_FIRST_S = 1.0  # a store down at start is checked once it answers
DURABILITY_CHECK_CEILING_S = 30.0
log = get_logger("smsgw.run")


@click.command(name="run")
@config_options
def command(config_file: Path | None, redis_url: str | None) -> None:
    """Run the gateway: bind to the SMSC in the config and serve until SIGTERM/SIGINT.

    On a signal it stops taking messages, finishes those in flight, sends queued replies,
    unbinds and exits 0. Needs a real hash key (SMSGW_SECURITY_HASH_KEY) and, for real
    work, Redis (--redis or SMSGW_REDIS_URL).
    """
    settings = load(config_file, redis_url, strict_key=True)
    sys.exit(run_async(serve(settings)))


async def serve(settings: Settings) -> int:
    app = build_app(settings)
    # Everything built so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise walk it all (pauses of up to ~60 ms).
    gc.collect()
    gc.freeze()
    if not await _store_usable(app):
        await app.close()
        return EXIT_FAILED
    message_log = MessageLog(settings.log.dir, settings.log.max_bytes, settings.log.backups)
    gateway = Gateway(app, SmppClient.from_settings(settings), message_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if os.environ.get("SMSGW_DEBUG_MEMORY"):
        _memory_debugging(loop)
    http = await start_http(app, gateway)
    running = asyncio.create_task(gateway.run())
    recovery = start_recovery(app)
    durability = asyncio.create_task(_warn_of_durability_gaps(app))
    stop_webhooks = _start_webhooks(app)
    log.info("smsgw running", smsc=f"{settings.smsc.host}:{settings.smsc.port}",
             short_codes=sorted(app.router.short_codes))
    await stop.wait()
    log.info("stopping: finishing messages in flight, then unbinding")
    await gateway.stop(drain_timeout=10.0)
    await running
    if recovery is not None:
        recovery.cancel()
    durability.cancel()
    await stop_webhooks()  # undelivered events stay in the store
    await http.cleanup()
    message_log.close()
    await app.close()
    log.info("stopped")
    return EXIT_OK


async def _store_usable(app: App) -> bool:
    """False for a store of the wrong mode (a cluster node without [redis] cluster, or
    the reverse); a store that does not answer yet is usable: it may come up."""
    if app.store.embedded:
        log.warning("no Redis URL: using the embedded store; nothing survives this process")
    elif not await app.store.ping():
        log.warning("Redis does not answer yet: messages get a temporary error until it does")
    else:
        try:
            await app.store.check_mode()
        except WrongStoreMode as exc:
            log.error(str(exc))
            return False
    return True


async def _warn_of_durability_gaps(app: App) -> None:
    """Once the store answers (at start, or once it comes up), say what of its settings
    would let a power cut take back what was answered (README "The Redis server")."""
    backoff = Backoff(DURABILITY_CHECK_FIRST_S, DURABILITY_CHECK_CEILING_S, jitter=0.1)
    while True:
        try:
            gaps = await app.store.durability_gaps()
        except (StoreUnavailable, RedisError):  # down, or a cluster not formed yet
            await asyncio.sleep(backoff.next_delay())
            continue
        for gap in gaps:
            log.warning(gap)
        return


def _start_webhooks(app: App) -> Callable[[], Awaitable[None]]:
    """The webhook delivery worker, with `[otp] webhook_url`; what stops it."""
    hooks = app.settings.otp
    if not hooks.webhook_url:
        return _nothing
    worker = WebhookWorker(app.store, app.otp.events, hooks.webhook_url, hooks.webhook_secret)
    task = asyncio.create_task(worker.run())
    # the host only: a URL may carry credentials (https://user:secret@host/...)
    log.info("webhooks on", host=urlsplit(hooks.webhook_url).hostname)

    async def stop() -> None:
        worker.stop()
        await task

    return stop


async def _nothing() -> None:
    return None


async def start_http(app: App, gateway: Gateway) -> web.AppRunner:
    settings = app.settings.http
    if not settings.api_key:
        log.warning("no [http] api_key: every /v1 call will get 401 (set SMSGW_HTTP_API_KEY)")
    if not settings.metrics_key:
        log.warning("no [http] metrics_key: GET /metrics is open to whoever reaches the port "
                    "(set SMSGW_HTTP_METRICS_KEY)")
    http_app = make_app(app.otp, settings.api_key, gateway.deliver, now, gateway.health,
                        metrics_key=settings.metrics_key)
    mount_console(http_app, app)  # /console/ and GET /v1/status
    runner = web.AppRunner(http_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    log.info("http api listening", host=settings.host, port=settings.port)
    return runner


def _memory_debugging(loop: asyncio.AbstractEventLoop) -> None:
    """SMSGW_DEBUG_MEMORY=1: trace allocations; SIGUSR1 logs the top allocation sites."""
    import tracemalloc

    tracemalloc.start(4)

    def dump() -> None:
        top = tracemalloc.take_snapshot().statistics("lineno")[:15]
        log.warning("memory", top=[str(stat) for stat in top])

    loop.add_signal_handler(signal.SIGUSR1, dump)
