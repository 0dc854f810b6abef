"""Test helpers that ship with smsgw (as aiosmtpd ships its `testing` module): real
Redis servers and Redis Clusters of our own on loopback, and free ports.

Tests, the benchmark and anyone testing an integration with smsgw use these; nothing here
runs in production.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import redis

__all__ = ["CLUSTER_PREFIX", "RedisCluster", "RedisServer", "free_cluster_port", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process of our own on loopback, that keeps nothing on disk."""

    def __init__(self, port: int, workdir: Path, durable: bool = False,
                 fsync: str = "always", config: Mapping[str, str] | None = None) -> None:
        self.port = port
        self.workdir = workdir
        self.durable = durable  # an append-only file, so a restart keeps the data
        self.fsync = fsync  # its appendfsync: "always" (the tests), "everysec" (production)
        self.config = dict(config or {})  # more redis.conf directives, by name
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (.ci/run installs it)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.durable else "no", "--appendfsync", self.fsync,
             "--dir", str(self.workdir), "--logfile", "", *_directives(self.config)],
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


def _directives(config: Mapping[str, str]) -> list[str]:
    """redis.conf directives as redis-server's arguments: `--name value` each."""
    return [part for name, value in config.items() for part in (f"--{name}", value)]


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


def cluster_ports(count: int) -> list[int]:
    """`count` ports as `free_cluster_port`, none of them another's bus port (chosen one by
    one, a node's port could be the bus port of another: that node never started, and CI
    once failed every cluster test on it)."""
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < count:
        port = free_cluster_port()
        if port in taken or port + 10000 in taken:
            continue
        chosen.append(port)
        taken |= {port, port + 10000}
    return chosen


class RedisCluster:
    """A Redis Cluster of our own on loopback: `masters` redis-server processes in cluster
    mode, slots spread by `redis-cli --cluster create`, nothing kept on disk."""

    def __init__(self, workdir: Path, masters: int = 3, durable: bool = False,
                 fsync: str = "always", config: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.ports = cluster_ports(masters)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.durable = durable  # append-only files: a restarted node keeps its data
        self.fsync = fsync  # as RedisServer's
        self.config = dict(config or {})  # as RedisServer's, for every node

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (.ci/run installs it)")
        try:
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
        except BaseException:
            self.stop()  # the nodes that did start are not left running
            raise

    def _node(self, port: int) -> subprocess.Popen[bytes]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (.ci/run installs it)")
        return subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.durable else "no", "--appendfsync", self.fsync,
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "2000", "--dir", str(self.workdir / str(port)),
             "--logfile", "", *_directives(self.config)],
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
