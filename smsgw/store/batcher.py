"""Auto-pipelining of script calls: every EVALSHA asked for in one turn of the event loop
goes to Redis in one pipeline (one round trip, one syscall each way).

On a plain Redis server the batch is written as RESP by `pack_evalsha` on one dedicated
connection (`pipe.py`) and its answers read back in order: redis-py's generic pipeline
encoder took about half of the client's cost per call, its pool and reader most of the
rest. A cluster or the embedded store goes through redis-py's pipeline (it routes per
node, or talks to no socket at all).

Each script stays atomic on its own; the order of calls is kept. A NOSCRIPT answer (a
restarted Redis) loads the scripts and sends those calls again. A lost connection fails
every call of the batch with StoreUnavailable: none of them is known to have run, and the
callers answer "deliver again" (the envelope makes a repeat of one that did run harmless).

Scripts are sent by the SHA their object computed; before a batch that names a script not
loaded yet, every script made so far (script.registered) is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    NoScriptError,
    SlotNotCoveredError,
    TryAgainError,
)

from smsgw.store.errors import StoreUnavailable
from smsgw.store.pipe import ScriptPipe, pack_command
from smsgw.store.script import Script, registered

MAX_BATCH = 512
# What means "the store can't be reached now" (a node down, a cluster failing over).
UNAVAILABLE = (aioredis.ConnectionError, aioredis.TimeoutError, OSError,
               ClusterDownError, SlotNotCoveredError, MasterDownError, TryAgainError)
MAX_FLUSHES = 8  # pipelines in flight; while all are busy, calls gather into bigger batches


Call = tuple[Script[Any, Any, Any], Sequence[str], Sequence[Any], "asyncio.Future[Any]"]


def pack_evalsha(sha: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    """One EVALSHA command in RESP (str as UTF-8, int in decimal, float by repr, as
    redis-py encodes them)."""
    parts = [b"EVALSHA", sha.encode(), b"%d" % len(keys)]
    parts += [key.encode() for key in keys]
    for value in args:
        if isinstance(value, bool):  # as redis-py: say 1 or 0, not True
            raise TypeError("cannot send a bool to a script")
        if isinstance(value, str):
            parts.append(value.encode())
        elif isinstance(value, int):
            parts.append(b"%d" % value)
        elif isinstance(value, float):
            parts.append(repr(value).encode())
        elif isinstance(value, bytes):
            parts.append(value)
        else:
            raise TypeError(f"cannot send a {type(value).__name__} to a script")
    return pack_command(parts)


class ScriptBatcher:
    def __init__(self, client: aioredis.Redis, pipe: ScriptPipe | None = None) -> None:
        self._redis = client
        self._pipe = pipe  # a plain server: write RESP ourselves (see the module's doc)
        self._loaded: set[Script[Any, Any, Any]] = set()  # since the last NOSCRIPT
        self._queue: list[Call] = []
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self._loading = asyncio.Lock()

    def call(self, script: Script[Any, Any, Any], keys: Sequence[str],
             args: Sequence[Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        return future

    def _start_flush(self) -> None:
        self._scheduled = False
        while self._queue and len(self._flushes) < MAX_FLUSHES:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            task = asyncio.create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if self._queue and not self._scheduled:
            self._start_flush()

    async def _flush(self, batch: list[Call], retried: bool = False) -> None:
        try:
            loaded = self._loaded
            if not all(item[0] in loaded for item in batch):
                await self._load(item[0] for item in batch)
            if self._pipe is not None:
                results = await self._send_raw(self._pipe, batch)
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for script, keys, args, _ in batch:
                        # (execute_command: a cluster pipeline blocks the evalsha() helper)
                        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                    results = await pipe.execute(raise_on_error=False)
        except UNAVAILABLE as exc:
            self._fail(batch, StoreUnavailable(str(exc) or type(exc).__name__))
            return
        except BaseException as exc:  # never leave a caller waiting for an answer
            self._fail(batch, exc if isinstance(exc, Exception) else StoreUnavailable("stopped"))
            raise
        missing = []
        for item, result in zip(batch, results, strict=True):
            future = item[3]
            if isinstance(result, NoScriptError) and not retried:
                missing.append(item)
            elif future.done():
                continue
            elif isinstance(result, UNAVAILABLE):  # a cluster pipeline returns these per call
                future.set_exception(StoreUnavailable(str(result) or type(result).__name__))
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        if missing:
            self._loaded = set()
            await self._flush(missing, retried=True)

    @staticmethod
    async def _send_raw(pipe: ScriptPipe, batch: list[Call]) -> list[Any]:
        futures = await pipe.send(
            b"".join(pack_evalsha(script.sha, keys, args) for script, keys, args, _ in batch),
            len(batch))
        with contextlib.suppress(ConnectionError):
            await futures[-1]  # answers come in order: the last one done, all are
        results = []
        for future in futures:
            error = future.exception()
            if isinstance(error, ConnectionError):
                raise error
            results.append(future.result())
        return results

    @staticmethod
    def _fail(batch: list[Call], error: Exception) -> None:
        for *_, future in batch:
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()

    async def load(self) -> None:
        """Load the scripts now, so that the first messages don't wait for it."""
        await self._load(())

    async def _load(self, wanted: Iterable[Script[Any, Any, Any]]) -> None:
        """Load every script made so far, and those `wanted`, that is not loaded yet
        (concurrent flushes wait for the same load); the set is published whole, never
        half-filled."""
        async with self._loading:
            missing = {*registered(), *wanted} - self._loaded
            for script in missing:
                sha = await self._redis.script_load(script.source)
                if sha != script.sha:
                    raise RuntimeError(f"{script.name}: Redis computed another SHA")
            if missing:
                self._loaded = self._loaded | missing
