"""The Redis client for a store URL: a server, one node of a cluster, or the embedded
in-process fakeredis (for "")."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

MAX_CONNECTIONS = 64
MAX_CLUSTER_CONNECTIONS = 256  # per node; the cluster client fails (not waits) beyond it


def cluster_client(url: str) -> aioredis.Redis:
    # No retry after a connection error or a timeout: redis-py would send the command
    # again, and a script call that ran but whose answer was lost (a link killed, a
    # node failing) would run twice, a transfer's debit or credit with it. The caller
    # hears StoreUnavailable and the message comes again, under its envelope.
    # (Redirections, MOVED, ASK, TRYAGAIN, are still followed: those did not run.)
    nodes = RedisCluster.from_url(
        url, decode_responses=True, max_connections=MAX_CLUSTER_CONNECTIONS,
        socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )
    return cast(aioredis.Redis, nodes)


def server_client(url: str) -> aioredis.Redis:
    # A bounded pool that waits for a free connection rather than failing a burst. No
    # retry either, as on the cluster: script calls take the dedicated pipe (pipe.py),
    # except over TLS, where redis-py would send a call whose answer was lost again.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=10,
        socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
        retry=Retry(NoBackoff(), 0), **_checked_pool_options(),
    )
    return aioredis.Redis(connection_pool=pool)


def embedded_client() -> aioredis.Redis:
    import fakeredis

    return fakeredis.FakeAsyncRedis(
        decode_responses=True, max_connections=MAX_CONNECTIONS,
        connection_pool_class=aioredis.BlockingConnectionPool,
    )


def _checked_pool_options() -> dict[str, Any]:
    """redis-py 8 hands out a pooled connection without checking that the server has not
    closed it (a restarted Redis) while its maintenance notifications are on, as they are
    by default ("auto"): the first command after a restart failed. Off, the pool checks
    each connection before a command goes to it and replaces a dead one."""
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # a redis-py without them: it always checks
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}
