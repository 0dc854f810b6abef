"""The real programs: `smsgw run` and `smsgw fake-smsc` as processes, signals included."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from smsgw.store.keys import subscriber_key
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from tests.conftest import TEST_KEY, add_subscribers, free_port, make_settings

SMSGW = [sys.executable, "-m", "smsgw"]


def env_for(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(values)
    return env


async def test_run_serves_then_drains_and_exits_zero_on_sigterm(redis_url: str,
                                                                tmp_path: Path) -> None:
    from smsgw.app import build_app

    app = build_app(make_settings(redis_url))
    await add_subscribers(app.store, ("989361111111", "prepaid", 50_000, 0),
                          ("989351234567", "prepaid", 0, 0))
    await app.store.redis.hset(subscriber_key("989361111111"), "pin",
                               app.hasher.pin_digest("989361111111", "55555"))
    async with FakeSmsc(redeliver_after=0.2) as smsc:
        process = await asyncio.create_subprocess_exec(
            *SMSGW, "run", "--redis", redis_url, cwd=tmp_path,
            env=env_for(SMSGW_SMSC_PORT=str(smsc.port), SMSGW_SECURITY_HASH_KEY=TEST_KEY,
                        SMSGW_HTTP_PORT=str(free_port()),
                        SMSGW_LOG_DIR=str(tmp_path / "log"), SMSGW_LOG_FORMAT="json"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            await smsc.wait_bound(timeout=20)
            mo = smsc.inject_mo("989361111111", "1112", "09351234567:3000:55555")
            await smsc.wait_answered(mo, timeout=10)
            await smsc.wait_mt(2, timeout=10)
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, stderr.decode()
    events = [json.loads(line)["event"] for line in stderr.decode().splitlines()
              if line.startswith("{")]
    assert "bound" in events and "stopped" in events
    assert int((await app.store.subscriber("989351234567"))["balance"]) == 3_000
    log_lines = (tmp_path / "log" / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(log_lines) == 3 and "55555" not in "".join(log_lines)
    await app.close()


def test_run_refuses_the_development_key(tmp_path: Path) -> None:
    result = subprocess.run([*SMSGW, "run"], cwd=tmp_path, env=env_for(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "development hash key" in result.stderr and "SMSGW_SECURITY_HASH_KEY" in result.stderr


async def test_fake_smsc_program_takes_mo_lines_and_prints_mt(tmp_path: Path) -> None:
    from smsgw.app import build_app
    from smsgw.transport.gateway import Gateway
    from smsgw.transport.smpp.client import SmppClient

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *SMSGW, "fake-smsc", "--port", str(port), env=env_for(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stdin is not None
    banner = await asyncio.wait_for(process.stdout.readline(), 20)
    assert b"listening" in banner
    app = build_app(make_settings("", smsc={"port": port}))
    gateway = Gateway(app, SmppClient.from_settings(app.settings))
    task = asyncio.create_task(gateway.run())
    await gateway.client.wait_bound(10)
    process.stdin.write(b"09361111111 1112 hello\n")
    await process.stdin.drain()
    lines = []
    try:
        while not any(line.startswith("MT") for line in lines):
            lines.append((await asyncio.wait_for(process.stdout.readline(), 10)).decode())
    except TimeoutError:
        process.kill()
        assert process.stderr is not None
        raise AssertionError((await process.stderr.read()).decode()[-3000:]) from None
    assert any("MO mo-1 queued" in line for line in lines)
    mt = next(line for line in lines if line.startswith("MT"))
    assert "1112 -> 09361111111" in mt and "ucs2" in mt
    await gateway.stop()
    await task
    await app.close()
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.wait(), 10)
    assert process.returncode == 0
