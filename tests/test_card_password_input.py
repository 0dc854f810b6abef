"""`smsgw admin card add ... --static-password -`: typed on a terminal without echo (asked
twice), or read from a pipe; never shown, and stored so that it authorises payments."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import build_app
from smsgw.commands.main import main
from smsgw.services.otp.cards import with_luhn
from tests.attacks import tried
from tests.conftest import TEST_KEY, make_settings
from tests.test_otp_rules import CARD, T0
from tests.test_processes import env_for

ADD = [sys.executable, "-m", "smsgw", "admin", "card", "add", CARD, "--mobile", "09121112233",
       "--type", "debit", "--static-password", "-"]


class Terminal:
    """The command on a pseudo-terminal of its own (its controlling terminal, as a person
    at a shell would run it): what it prints, and what echo would show, is all read."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        self.seen = b""

    def read_until(self, wanted: bytes, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen and time.monotonic() < deadline:
            if not self._read_some(deadline - time.monotonic()):
                break

    def _read_some(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += chunk
        return bool(chunk)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def finish(self) -> int:
        while self._read_some(20.0):
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def env(redis_url: str) -> dict[str, str]:
    return env_for(SMSGW_SECURITY_HASH_KEY=TEST_KEY, SMSGW_REDIS_URL=redis_url)


async def authorises(redis_url: str, password: str) -> bool:
    app = build_app(make_settings(redis_url))
    try:
        approved, _ = await app.otp.authorize(CARD, 1000, "Shop", None, password, T0)
        return approved
    finally:
        await app.close()


async def test_on_a_terminal_the_password_is_not_echoed(redis_url: str, tmp_path: Path) -> None:
    terminal = Terminal(ADD, env(redis_url), tmp_path)
    terminal.read_until(b"Static password: ")
    terminal.type(b"Typed-Secret-42\n")
    terminal.read_until(b"(again): ")
    terminal.type(b"Typed-Secret-42\n")
    status = terminal.finish()
    assert status == 0, terminal.seen
    assert b"Static password: " in terminal.seen and b"registered" in terminal.seen
    assert b"Typed-Secret-42" not in terminal.seen  # nothing echoed, nothing printed
    assert await authorises(redis_url, "Typed-Secret-42")


async def test_on_a_terminal_two_different_entries_are_refused(redis_url: str,
                                                              tmp_path: Path) -> None:
    terminal = Terminal(ADD, env(redis_url), tmp_path)
    terminal.read_until(b"Static password: ")
    terminal.type(b"First-1234\n")
    terminal.read_until(b"(again): ")
    terminal.type(b"Other-1234\n")
    assert terminal.finish() == 2
    assert b"the two entries differ" in terminal.seen and b"Traceback" not in terminal.seen
    assert b"First-1234" not in terminal.seen and b"Other-1234" not in terminal.seen
    assert not await authorises(redis_url, "First-1234")


async def test_from_a_pipe_the_first_line_is_the_password(redis_url: str,
                                                          tmp_path: Path) -> None:
    result = subprocess.run(ADD, input=b"Piped-Secret-77\r\nnext line\n", cwd=tmp_path,
                            env=env(redis_url), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"Piped-Secret-77" not in result.stdout + result.stderr
    assert b"Static password" not in result.stdout + result.stderr  # no prompt into a pipe
    assert await authorises(redis_url, "Piped-Secret-77")


async def test_a_pipe_that_is_not_utf8_is_bad_input(redis_url: str, tmp_path: Path) -> None:
    result = subprocess.run(ADD, input=b"\xff\xfe-secret\n", cwd=tmp_path, env=env(redis_url),
                            capture_output=True, timeout=60)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    # (read as strict UTF-8, or with surrogate escapes under a C locale)
    assert b"not UTF-8" in result.stderr or b"must be printable text" in result.stderr


async def test_with_standard_input_closed_it_is_bad_input(redis_url: str,
                                                         tmp_path: Path) -> None:
    result = subprocess.run(ADD, cwd=tmp_path, env=env(redis_url), capture_output=True,
                            timeout=60, preexec_fn=lambda: os.close(0))
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert b"no standard input" in result.stderr


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> str:
    monkeypatch.setenv("SMSGW_SECURITY_HASH_KEY", TEST_KEY)
    monkeypatch.setenv("SMSGW_REDIS_URL", redis_url)
    return redis_url


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed=st.one_of(st.text(max_size=40), st.binary(max_size=40).map(
    lambda raw: raw.decode("utf-8", "surrogateescape"))), serial=st.integers(0, 10**9 - 1))
def test_any_piped_password_is_stored_or_refused_with_a_message(
        cli_env: str, typed: str, serial: int) -> None:
    tried("card add: a piped static password")
    card = with_luhn("627961" + f"{serial:09d}")
    result = CliRunner().invoke(main, ["admin", "card", "add", card, "--mobile", "09121112233",
                                       "--type", "debit", "--static-password", "-"],
                                input=typed.encode("utf-8", "surrogateescape"))
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    password = typed.split("\n")[0].rstrip("\r")
    if result.exit_code == 0:  # and nothing else is printed: not the password
        assert result.output == f"card …{card[-4:]} registered for 989121112233\n"
        assert 4 <= len(password) <= 32 and password.isprintable()
        assert asyncio.run(authorises_card(cli_env, card, password))
    elif result.exit_code == 1:  # the same generated card twice
        assert result.output == f"error: card …{card[-4:]} is already registered\n"
    else:
        assert "Invalid value for --static-password" in result.output


async def authorises_card(redis_url: str, card: str, password: str) -> bool:
    app = build_app(make_settings(redis_url))
    try:
        approved, _ = await app.otp.authorize(card, 1000, "Shop", None, password, T0)
        return approved
    finally:
        await app.close()
