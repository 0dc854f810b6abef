"""Script batches on a Redis Cluster without redis-py's cluster pipeline: each call goes,
by its first key's slot, to the primary that redis-py's own slot map names, on a
dedicated connection to that node (pipe.py), one write per node per batch.

redis-py's ClusterPipeline builds a command object, a node lookup and a result wrapper per
call, and its connection pool checks out per node: on a cluster a transfer (a journaled
debit, credit and settle, five or six calls) cost two to three times the gateway CPU of a
single server, most of it there.

Anything unusual goes back to redis-py for a while (`RESTING_SECONDS`), which follows
redirections and refreshes its slot map: a MOVED or ASK answer (the script did not run:
that call is sent again through redis-py at once), TRYAGAIN, CLUSTERDOWN or MASTERDOWN
(the same), a call without keys, a node whose connection is not ready, or a lost
connection (its calls fail as StoreUnavailable: they may have run; the callers answer
"deliver again", as on a single server).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    ResponseError,
    TryAgainError,
)

from smsgw.store.pipe import ScriptPipe

RESTING_SECONDS = 5.0
# Answers that mean "not run here: ask the cluster again", as redis-py's parser types them
# (and, should a version leave one untyped, by the error's first word).
REDIRECTS = (MovedError, AskError, TryAgainError, ClusterDownError, MasterDownError)
REDIRECT_WORDS = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN")


def is_redirect(answer: Any) -> bool:
    return isinstance(answer, REDIRECTS) or (
        isinstance(answer, ResponseError) and str(answer).startswith(REDIRECT_WORDS))


class NodePipes:
    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self._pipes: dict[str, ScriptPipe] = {}
        self._resting_until = 0.0  # monotonic: until then, every batch goes through redis-py

    def rest(self) -> None:
        """Let redis-py carry the batches for a while (it finds the cluster's new shape)."""
        self._resting_until = time.monotonic() + RESTING_SECONDS

    def split(self, calls: Sequence[Any]) -> dict[ScriptPipe, list[Any]] | None:
        """The calls by the node connection each goes to; None: this batch goes through
        redis-py (resting, a call without keys, a node not connected or unknown yet)."""
        if time.monotonic() < self._resting_until:
            return None
        nodes = self._cluster.nodes_manager
        groups: dict[ScriptPipe, list[Any]] = {}
        try:
            for call in calls:
                keys = call[1]
                if not keys:
                    return None
                node = nodes.get_node_from_slot(key_slot(keys[0].encode()))
                pipe = self._pipes.get(node.name)
                if pipe is None:
                    pipe = self._pipes[node.name] = self._pipe_for(node)
                groups.setdefault(pipe, []).append(call)
        except Exception:  # a slot not covered, a map being rebuilt: redis-py knows best
            return None
        if not all(pipe.ready() for pipe in groups):
            for pipe in groups:
                pipe.connect_soon()
            return None
        return groups

    @staticmethod
    def usable_for(cluster: RedisCluster) -> bool:
        """Plain TCP to the nodes; TLS stays with redis-py (store.py asks once)."""
        kind = cluster.nodes_manager.connection_kwargs.get("connection_class")
        return kind is not None and ScriptPipe.supports(kind)

    @staticmethod
    def _pipe_for(node: Any) -> ScriptPipe:
        return ScriptPipe(dict(node.connection_kwargs))

    def close(self) -> None:
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()
