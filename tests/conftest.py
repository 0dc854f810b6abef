"""Shared fixtures: a private redis-server on a free port, a private Redis Cluster (three
redis-server processes in cluster mode), and stores on them or embedded.

Each test gets a flushed database of our own servers, so tests never touch anyone else's
data. Set SMSGW_TEST_REDIS_URL to use an existing server instead (its db is flushed!, and
under `-n 2` the next one too: each worker has its own).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import redis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from smsgw.app import App, build_app
from smsgw.config import Settings, load_settings
from smsgw.store import Store, SubscriberRow
from smsgw.testing import (  # re-exported: tests import them from here
    CLUSTER_PREFIX,
    RedisCluster,
    RedisServer,
    free_port,
)

TEST_KEY = "test-hash-key-0123456789abcdef"

# The property tests' examples: random on a developer's run, the same every time under
# `.ci/run` (SMSGW_HYPOTHESIS_PROFILE=ci), so that what CI passes or fails can be run
# again as it was. A failure in CI shows the example and its reproduce blob.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis.settings.load_profile(os.environ.get("SMSGW_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def answers_keep_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer a test's TestClient gets from a route of GET /openapi.json is checked
    against that document (tests/contract.py): the suite's HTTP traffic is the check."""
    from tests.contract import check_answer, documented

    original = TestClient._request

    async def checked(self: TestClient, method: str, path: object,  # type: ignore[type-arg]
                      **kwargs: object) -> ClientResponse:
        response = await original(self, method, path, **kwargs)  # type: ignore[arg-type]
        if documented(response.method, response.url.path):
            check_answer(response.method, response.url.path, response.status,
                         response.content_type, await response.read())
        return response

    monkeypatch.setattr(TestClient, "_request", checked)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with tempfile.TemporaryDirectory(prefix="smsgw-cluster-") as workdir:
        cluster = RedisCluster(Path(workdir))
        cluster.start()
        yield cluster
        cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisCluster) -> str:
    redis_cluster.flush()
    return CLUSTER_PREFIX + redis_cluster.url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | str]:
    external = os.environ.get("SMSGW_TEST_REDIS_URL")
    if external:
        yield _worker_database(external)
        return
    with tempfile.TemporaryDirectory(prefix="smsgw-redis-") as workdir:
        server = RedisServer(free_port(), Path(workdir))
        server.start()
        yield server
        server.stop()


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker flushes a database of its own: the URL's number
    plus the worker's (gw0 the URL's own, gw1 the next, ...)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base, _, database = url.rpartition("/")
    if not base.startswith("redis") or not database.isdigit():
        base, database = url.rstrip("/"), "0"
    return f"{base}/{int(database) + int(worker.removeprefix('gw'))}"


@pytest.fixture
def redis_url(redis_server: RedisServer | str) -> str:
    url = redis_server if isinstance(redis_server, str) else redis_server.url
    redis.Redis.from_url(url).flushdb()
    return url


def make_settings(redis_url: str = "", **tables: dict[str, object]) -> Settings:
    overrides: dict[str, dict[str, object]] = {"security": {"hash_key": TEST_KEY}}
    overrides.update(tables)
    cluster = redis_url.startswith(CLUSTER_PREFIX)
    overrides.setdefault("redis", {}).update(url=redis_url.removeprefix(CLUSTER_PREFIX),
                                             cluster=cluster)
    return load_settings(Path(__file__).parent.parent / "config" / "smsgw.toml", overrides)  # type: ignore[arg-type]


@pytest.fixture(params=["redis", "embedded"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Both stores: a real redis-server, and the embedded fakeredis."""
    if request.param == "embedded":
        return ""
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=["redis", "embedded", "cluster"])
def any_store_url(request: pytest.FixtureRequest) -> str:
    """Every store: a real redis-server, the embedded fakeredis, a real Redis Cluster."""
    if request.param == "embedded":
        return ""
    if request.param == "cluster":
        return str(request.getfixturevalue("cluster_url"))
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
async def app(any_store_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(any_store_url))
    yield application
    await application.close()


async def add_subscribers(store: Store, *rows: tuple[str, str, int, int]) -> None:
    await store.upsert_subscribers(
        [SubscriberRow(m, plan, balance, bill, "fa") for m, plan, balance, bill in rows],
        replace=False, at="2026-07-01T00:00:00+03:30",
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its counts to the controller (which prints)."""
    from tests.attacks import INPUTS_TRIED
    from tests.contract import CHECKED

    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["inputs_tried"] = dict(INPUTS_TRIED)
        worker_output["contract_checked"] = dict(CHECKED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    from tests.attacks import INPUTS_TRIED
    from tests.contract import CHECKED

    worker_output = getattr(node, "workeroutput", {})
    INPUTS_TRIED.update(worker_output.get("inputs_tried", {}))
    for label, count in worker_output.get("contract_checked", {}).items():
        CHECKED[label] = CHECKED.get(label, 0) + count


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.attacks import INPUTS_TRIED
    from tests.contract import CHECKED

    if CHECKED:
        terminalreporter.write_line(
            f"contract: {sum(CHECKED.values()):,} answers checked against GET /openapi.json ("
            + ", ".join(f"{label}: {count}" for label, count in sorted(CHECKED.items())) + ")")

    for promise, count in sorted(INPUTS_TRIED.items()):
        terminalreporter.write_line(f"attack {promise}: {count:,} inputs tried")
