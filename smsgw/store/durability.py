"""Whether Redis keeps what it answered through a power cut (README "The Redis server"):
read off the server, or each primary of a cluster, and said as what each setting loses
and what to set. `smsgw run` asks once the store answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from redis.asyncio.cluster import RedisCluster

if TYPE_CHECKING:
    from smsgw.store.store import Store

SETTINGS = ("appendfsync", "no-appendfsync-on-rewrite")


async def gaps(store: Store) -> list[str]:
    """No append-only file, an fsync less often than every write, fsyncs skipped during
    rewrites, or an AOF whose last write or rewrite failed, per node. Empty for the
    embedded store (it says so itself); a node that refuses INFO or CONFIG (an ACL, a
    managed service) is not judged on what it does not tell."""
    if store.embedded:
        return []
    found = []
    for name, node in await _nodes(store):
        persistence = await store.refusable(node.execute_command("INFO", "persistence"))
        config = {}
        for setting in SETTINGS:
            value = _config_value(await store.refusable(
                node.execute_command("CONFIG", "GET", setting)), setting)
            if value is not None:
                config[setting] = value
        found += [f"Redis {name} {gap}" for gap in node_gaps(persistence, config)]
    return found


async def _nodes(store: Store) -> list[tuple[str, Any]]:
    """The server, or each primary of a cluster, by name."""
    if not store.cluster:
        return [("server", store.redis)]
    cluster = cast(RedisCluster, store.redis)
    await store.plain(cluster.initialize())  # the nodes are known once it is
    return [(node.name, node) for node in cluster.get_primaries()]


def node_gaps(persistence: dict[str, Any] | None, config: dict[str, str]) -> list[str]:
    """What one node's INFO persistence (None: refused) and settings leave exposed."""
    if persistence is not None and not int(persistence.get("aof_enabled", 0)):
        return ["keeps no append-only file: a power cut or a restart loses what its last "
                "snapshot does not hold (with save \"\", everything) (set appendonly yes "
                "and appendfsync always)"]
    found = []
    fsync = config.get("appendfsync")
    if fsync == "everysec":
        found.append("fsyncs its append-only file each second, not with each write: a "
                     "power cut loses up to the last second or two of answered messages "
                     "(set appendfsync always)")
    elif fsync not in ("always", None):
        found.append(f"leaves its append-only file's fsync to the OS (appendfsync {fsync}): "
                     "a power cut loses up to ~30 s of answered messages on Linux (set "
                     "appendfsync always)")
    if config.get("no-appendfsync-on-rewrite") == "yes":
        found.append("skips fsyncs while it rewrites its append-only file "
                     "(no-appendfsync-on-rewrite yes): a power cut then loses up to ~30 s "
                     "(set no-appendfsync-on-rewrite no)")
    for status in ("aof_last_write_status", "aof_last_bgrewrite_status"):
        if persistence is not None and persistence.get(status, "ok") != "ok":
            found.append(f"reports {status}:{persistence[status]}: its append-only file "
                         "may not hold what it answered (see its log: disk full, "
                         "permissions)")
    return found


def _config_value(answer: Any, name: str) -> str | None:
    """One setting out of CONFIG GET's answer (a flat list, or a dict in RESP3); the
    store's clients decode answers to str."""
    if isinstance(answer, dict):
        return cast(str | None, answer.get(name))
    if isinstance(answer, list) and len(answer) >= 2:
        return str(answer[1])
    return None
