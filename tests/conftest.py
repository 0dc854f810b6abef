"""Shared fixtures: a private redis-server on a free port, a private Redis Cluster (three
redis-server processes in cluster mode), and stores on them or embedded.

Each test gets a flushed database of our own servers, so tests never touch anyone else's
data. Set SMSGW_TEST_REDIS_URL to use an existing server instead (its db is flushed!).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from smsgw.app import App, build_app
from smsgw.config import Settings, load_settings
from smsgw.store import Store, SubscriberRow

TEST_KEY = "test-hash-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process of our own on loopback, that keeps nothing on disk."""

    def __init__(self, port: int, workdir: Path, durable: bool = False) -> None:
        self.port = port
        self.workdir = workdir
        self.durable = durable  # an fsync'd append-only file, so a restart keeps the data
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.durable else "no", "--appendfsync", "always",
             "--dir", str(self.workdir), "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


CLUSTER_PREFIX = "cluster+"  # a test store URL naming a cluster node


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisCluster:
    """A Redis Cluster of our own on loopback: `masters` redis-server processes in cluster
    mode, slots spread by `redis-cli --cluster create`, nothing kept on disk."""

    def __init__(self, workdir: Path, masters: int = 3, durable: bool = False) -> None:
        self.workdir = workdir
        self.ports = [free_cluster_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.durable = durable  # fsync'd append-only files: a restarted node keeps its data

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.fail("redis-cli is not installed (.ci/run installs it)")
        for port in self.ports:
            (self.workdir / str(port)).mkdir()
            self.processes.append(self._node(port))
        for port in self.ports:
            RedisServer(port, self.workdir).wait_ready()
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        self.wait_ok()

    def _node(self, port: int) -> subprocess.Popen[bytes]:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        return subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.durable else "no", "--appendfsync", "always",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "2000", "--dir", str(self.workdir / str(port)),
             "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_node(self, index: int) -> None:
        self.processes[index].terminate()
        self.processes[index].wait(timeout=10)

    def start_node(self, index: int) -> None:
        self.processes[index] = self._node(self.ports[index])
        RedisServer(self.ports[index], self.workdir).wait_ready()

    def wait_ok(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                states = [redis.Redis(port=p).cluster("info").get("cluster_state")
                          for p in self.ports]
            except redis.RedisError:
                states = []
            if states and all(state == "ok" for state in states):
                return
            time.sleep(0.1)
        raise RuntimeError("the test Redis Cluster did not come up")

    def flush(self) -> None:
        for port in self.ports:
            redis.Redis(port=port).flushall()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)
        self.processes = []


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
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="smsgw-redis-") as workdir:
        server = RedisServer(free_port(), Path(workdir))
        server.start()
        yield server
        server.stop()


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.attacks import INPUTS_TRIED

    for promise, count in sorted(INPUTS_TRIED.items()):
        terminalreporter.write_line(f"attack {promise}: {count:,} inputs tried")
