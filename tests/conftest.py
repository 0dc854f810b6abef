"""Shared fixtures: a private redis-server on a free port, and stores on it or embedded.

Each test gets a flushed database of our own server, so tests never touch anyone else's
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
    overrides.setdefault("redis", {})["url"] = redis_url
    return load_settings(Path(__file__).parent.parent / "config" / "smsgw.toml", overrides)  # type: ignore[arg-type]


@pytest.fixture(params=["redis", "embedded"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Both stores: a real redis-server, and the embedded fakeredis."""
    if request.param == "embedded":
        return ""
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[App]:
    application = build_app(make_settings(store_url))
    yield application
    await application.close()


async def add_subscribers(store: Store, *rows: tuple[str, str, int, int]) -> None:
    await store.upsert_subscribers(
        [SubscriberRow(m, plan, balance, bill, "fa") for m, plan, balance, bill in rows],
        replace=False, at="2026-07-01T00:00:00+03:30",
    )
