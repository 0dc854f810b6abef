"""Auto-pipelining of script calls: every EVALSHA asked for in one turn of the event loop
goes to Redis in one pipeline (one round trip, one syscall each way).

On a plain Redis server the batch is written as RESP by `pack_evalsha` (hiredis, in C) on
one dedicated connection (`pipe.py`) and its answers read back in order: redis-py's
generic pipeline encoder took about half of the client's cost per call, its pool and
reader most of the rest. A cluster or the embedded store goes through redis-py's
pipeline (it routes per node, or talks to no socket at all).

Each script stays atomic on its own; the order of calls is kept. A NOSCRIPT answer (a
restarted Redis) loads the scripts and sends those calls again. A lost connection fails
every call of the batch with StoreUnavailable: none of them is known to have run, and the
callers answer "deliver again" (the envelope makes a repeat of one that did run harmless).

Scripts are sent by the SHA their object computed; before a batch that names a script not
loaded yet, every script made so far (script.registered) is loaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    MasterDownError,
    NoScriptError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)

from smsgw.store.errors import StoreUnavailable
from smsgw.store.node_pipes import NodePipes, is_redirect
from smsgw.store.pipe import ScriptPipe
from smsgw.store.script import Script, registered

MAX_BATCH = 512
# What means "the store can't be reached now" (a node down, a cluster failing over; a
# ClusterError: redis-py gave up after as many redirections as it follows, a slot being
# resharded; READONLY: the server became a replica and refused the script's first write,
# so nothing of it was written: none of these ran the call).
UNAVAILABLE = (aioredis.ConnectionError, aioredis.TimeoutError, OSError,
               ClusterDownError, ClusterError, SlotNotCoveredError, MasterDownError,
               TryAgainError, ReadOnlyError)
MAX_FLUSHES = 8  # pipelines in flight; while all are busy, calls gather into bigger batches


# (script, keys, args, the caller's future, the call as RESP: packed when asked for, so
# that an argument that cannot be sent fails its own caller at once, never a batch)
Call = tuple[Script[Any, Any, Any], Sequence[str], Sequence[Any], "asyncio.Future[Any]",
             bytes]


def pack_evalsha(sha: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    """One EVALSHA command in RESP, packed in C by hiredis (already the store's reader):
    str as UTF-8, int in decimal, float by repr, bytes as they are, byte for byte as
    redis-py packs them; anything else is a TypeError (a bool, and any other int subclass
    such as an IntEnum, which redis-py would send as its repr), text that is not Unicode
    (a lone surrogate) a UnicodeEncodeError, as before. Less than half the cost of packing it
    in Python (20.7 -> 8.7 µs a transfer's call), and this runs for every store call."""
    packed: bytes = hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
    return packed


class _Batch:
    """One pipeline written on the dedicated connection: its answers, in order, settle
    its callers' futures once the last is in (pipe.Answers)."""

    __slots__ = ("_batcher", "_done", "_node", "_retried", "calls", "results")

    def __init__(self, batcher: ScriptBatcher, calls: list[Call], retried: bool,
                 node: bool) -> None:
        self.calls = calls
        self.results: list[Any] = []
        self._batcher = batcher
        self._retried = retried
        self._node = node  # written to one node of a cluster (node_pipes.py)
        self._done = False

    def answer(self, value: Any) -> None:
        self.results.append(value)
        if len(self.results) == len(self.calls):
            self._done = True
            if self._node:
                self._batcher._settle_node_batch(self.calls, self.results, self._retried)
            else:
                self._batcher._settle(self.calls, self.results, self._retried)

    def fail(self, error: Exception) -> None:
        if not self._done:
            self._done = True
            if self._node:
                self._batcher.nodes_rest()
            self._batcher._give_up(self.calls, StoreUnavailable(str(error) or "lost"))


class ScriptBatcher:
    def __init__(self, client: aioredis.Redis, pipe: ScriptPipe | None = None,
                 nodes: NodePipes | None = None) -> None:
        self._redis = client
        self._pipe = pipe  # a plain server: write RESP ourselves (see the module's doc)
        self._nodes = nodes  # a cluster: the same, one connection per node
        self._loaded: set[Script[Any, Any, Any]] = set()  # since the last NOSCRIPT
        self._queue: list[Call] = []
        self._scheduled = False
        self._in_flight = 0  # batches written and not yet settled
        self._tasks: set[asyncio.Task[None]] = set()  # the slow paths under way
        self._loading = asyncio.Lock()

    def call(self, script: Script[Any, Any, Any], keys: Sequence[str],
             args: Sequence[Any]) -> asyncio.Future[Any]:
        """Raises TypeError or UnicodeEncodeError (before anything is queued) for an
        argument that cannot be sent; a batch written later can then not fail halfway
        through packing."""
        payload = pack_evalsha(script.sha, keys, args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future, payload))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        return future

    def _start_flush(self) -> None:
        """The hot path writes each batch at once, with no task; a batch that must first
        load scripts or connect, or goes through redis-py (a cluster, the embedded store),
        gets a task of its own."""
        self._scheduled = False
        while self._queue and self._in_flight < MAX_FLUSHES:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._in_flight += 1
            pipe, loaded = self._pipe, self._loaded
            if not all(item[0] in loaded for item in batch):
                self._spawn(self._flush(batch))
            elif pipe is not None and pipe.ready():
                self._write(pipe, batch, retried=False)
            elif self._nodes is None or not self._write_to_nodes(batch):
                self._spawn(self._flush(batch))

    def _write_to_nodes(self, batch: list[Call]) -> bool:
        """A cluster's batch, one write per node (each a batch in flight of its own);
        False: it goes through redis-py."""
        assert self._nodes is not None
        groups = self._nodes.split(batch)
        if groups is None:
            return False
        self._in_flight += len(groups) - 1
        for pipe, calls in groups.items():
            self._write(pipe, calls, retried=False, node=True)
        return True

    def nodes_rest(self) -> None:
        if self._nodes is not None:
            self._nodes.rest()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write(self, pipe: ScriptPipe, batch: list[Call], retried: bool,
               node: bool = False) -> None:
        payload = b"".join(item[4] for item in batch)
        try:
            pipe.write(payload, len(batch), _Batch(self, batch, retried, node))
        except ConnectionError as exc:
            if node:
                self.nodes_rest()
            self._give_up(batch, StoreUnavailable(str(exc)))

    async def _flush(self, batch: list[Call], retried: bool = False) -> None:
        """The slow path of one batch (it is in flight until settled or given up)."""
        try:
            loaded = self._loaded
            if not all(item[0] in loaded for item in batch):
                await self._load(item[0] for item in batch)
            if self._pipe is not None:
                await self._pipe.connected()
                self._write(self._pipe, batch, retried)
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for script, keys, args, *_ in batch:
                    # (execute_command: a cluster pipeline blocks the evalsha() helper)
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except UNAVAILABLE as exc:
            self._give_up(batch, StoreUnavailable(str(exc) or type(exc).__name__))
            return
        except BaseException as exc:  # never leave a caller waiting for an answer
            self._give_up(batch, exc if isinstance(exc, Exception)
                          else StoreUnavailable("stopped"))
            raise
        self._settle(batch, results, retried)

    def _settle(self, batch: list[Call], results: list[Any], retried: bool) -> None:
        """Each caller gets its answer; calls that met NOSCRIPT (a restarted Redis) go
        again, once, after the scripts are loaded."""
        missing = []
        for item, result in zip(batch, results, strict=True):
            future = item[3]
            if isinstance(result, NoScriptError) and not retried:
                missing.append(item)
            elif future.done():
                continue
            elif isinstance(result, NoScriptError):
                # NOSCRIPT again after the reload (the scripts flushed twice in a row, a
                # node restarting): not run, and nothing wrong with the call: "later"
                self._loaded = set()
                future.set_exception(StoreUnavailable(f"scripts not loaded: {result}"))
            elif isinstance(result, UNAVAILABLE):  # a cluster pipeline returns these per call
                future.set_exception(StoreUnavailable(str(result) or type(result).__name__))
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        if missing:
            self._loaded = set()
            self._spawn(self._flush(missing, retried=True))  # still in flight
            return
        self._landed()

    def _settle_node_batch(self, batch: list[Call], results: list[Any], retried: bool) -> None:
        """A node's answers: calls it did not run (a redirection: the slot moved, the
        cluster is failing over) go again through redis-py, which follows them."""
        again: list[Call] = []
        ran: list[Call] = []
        answers: list[Any] = []
        for item, result in zip(batch, results, strict=True):
            if is_redirect(result):
                again.append(item)
            else:
                ran.append(item)
                answers.append(result)
        if again:
            self.nodes_rest()
            self._in_flight += 1  # the resend is a batch of its own
            self._spawn(self._flush(again, retried))
        self._settle(ran, answers, retried)

    def _give_up(self, batch: list[Call], error: Exception) -> None:
        for item in batch:
            future = item[3]
            if not future.done():
                future.set_exception(error)
        self._landed()

    def _landed(self) -> None:
        """A batch is done: the next may go (calls gathered meanwhile, in one batch)."""
        self._in_flight -= 1
        if self._queue and not self._scheduled:
            self._start_flush()

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
        if self._nodes is not None:
            self._nodes.close()

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
