"""Operators' commands: replay (idempotent, --compare, bad lines) and admin, via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from smsgw.commands.cli import main
from tests.conftest import TEST_KEY

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, redis_url: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SMSGW_SECURITY_HASH_KEY", TEST_KEY)
    monkeypatch.setenv("SMSGW_REDIS_URL", redis_url)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)

    return run


def records(text: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def show(cli, msisdn: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    result = cli("admin", "show", msisdn, "--json", "--at", "2026-07-23T12:00:00+03:30")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_replay_writes_replies_and_is_idempotent(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = str(EXAMPLES / "conversation.jsonl")
    first = cli("replay", log, "--subscribers", str(EXAMPLES / "subscribers.csv"))
    assert first.exit_code == 0, first.output
    replies = records(first.stdout)
    assert {r["in_reply_to"] for r in replies} >= {"mo-1", "mo-2", "mo-3", "mo-4", "mo-5"}
    assert all(r["from"] == "1112" and r["to"].startswith("98") for r in replies)
    mo1 = [r for r in replies if r["in_reply_to"] == "mo-1"]
    assert [r["to"] for r in mo1] == ["989361111111", "989351234567"]
    assert mo1[0]["ts"] == "2026-07-23T10:15:00+03:30"
    after_first = {m: show(cli, m) for m in ("09361111111", "09351234567", "09331234567")}
    assert after_first["09361111111"]["balance"] == 20_000 - 2_500 - 5_500
    assert after_first["09361111111"]["failed_pin_attempts"] == 1

    second = cli("replay", log, "--subscribers", str(EXAMPLES / "subscribers.csv"))
    assert second.exit_code == 0
    assert second.stdout == first.stdout  # the same replies, written again
    assert {m: show(cli, m) for m in after_first} == after_first  # nothing applied twice


def test_replay_compare_reports_changed_replies(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbound = (EXAMPLES / "conversation.jsonl").read_text(encoding="utf-8")
    out = tmp_path / "replies.jsonl"
    assert cli("replay", str(EXAMPLES / "conversation.jsonl"), "--subscribers",
               str(EXAMPLES / "subscribers.csv"), "--out", str(out)).exit_code == 0
    recorded = out.read_text(encoding="utf-8").splitlines()
    tampered = [line.replace("رمز", "RAMZ") if '"mo-4"' in line else line for line in recorded]
    full_log = tmp_path / "full.jsonl"
    full_log.write_text(inbound + "\n".join(tampered) + "\n", encoding="utf-8")
    result = cli("replay", str(full_log), "--compare", "--out", str(tmp_path / "again.jsonl"))
    assert result.exit_code == 0
    assert "line 4 (id mo-4): replies differ" in result.stderr
    assert "1 of 7 compared differ" in result.stderr


def test_replay_skips_malformed_lines_with_line_numbers(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = (EXAMPLES / "conversation.jsonl").read_text(encoding="utf-8").splitlines()[0]
    log = tmp_path / "bad.jsonl"
    log.write_text("\n".join([
        "not json at all", good,
        '{"ts": "2026-07-23T10:15:00", "from": "1", "to": "2", "text": "x"}',
        '["a list"]', '{"ts": "2026-07-23T10:15:00+03:30", "from": 5, "to": "1112", "text": "x"}',
        '{"ts": "yesterday", "from": "09361111111", "to": "1112", "text": "x"}',
    ]) + "\n", encoding="utf-8")
    result = cli("replay", str(log), "--subscribers", str(EXAMPLES / "subscribers.csv"))
    assert result.exit_code == 0
    for line in (1, 3, 4, 5, 6):
        assert f"line {line}: skipped" in result.stderr
    assert "line 2:" not in result.stderr
    assert len(records(result.stdout)) == 2
    strict = cli("replay", str(log), "--strict")
    assert strict.exit_code == 2


def test_load_subscribers_bad_row_loads_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "subs.csv"
    csv.write_text("msisdn,plan,balance,bill\n09361111111,prepaid,100,0\n"
                   "0912,prepaid,1,0\n09351234567,gold,1,0\n09331234567,prepaid,1.5,0\n"
                   "09361111111,prepaid,5,0\n", encoding="utf-8")
    result = cli("admin", "load-subscribers", str(csv))
    assert result.exit_code == 2
    for line in (3, 4, 5, 6):
        assert f"line {line}:" in result.stderr
    assert cli("admin", "show", "09361111111").exit_code == 1  # nothing was loaded


def test_load_subscribers_keeps_known_balance_unless_replace(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "subs.csv"
    csv.write_text("msisdn,plan,balance,bill,language\n۰۹۳۶۱۱۱۱۱۱۱,prepaid,۲۰٬۰۰۰,0,fa\n",
                   encoding="utf-8")
    assert cli("admin", "load-subscribers", str(csv)).exit_code == 0
    assert show(cli, "09361111111")["balance"] == 20_000
    csv.write_text("msisdn,plan,balance,bill,language\n+989361111111,prepaid,99,0,en\n",
                   encoding="utf-8")
    assert "1 updated" in cli("admin", "load-subscribers", str(csv)).stdout
    assert show(cli, "09361111111")["balance"] == 20_000
    assert show(cli, "09361111111")["language"] == "en"
    assert "1 replaced" in cli("admin", "load-subscribers", str(csv), "--replace").stdout
    assert show(cli, "09361111111")["balance"] == 99


def test_admin_show_unblock_topup_reset_history(cli) -> None:  # type: ignore[no-untyped-def]
    cli("replay", str(EXAMPLES / "conversation.jsonl"), "--subscribers",
        str(EXAMPLES / "subscribers.csv"))
    shown = show(cli, "09361111111")
    assert set(shown) >= {"msisdn", "plan", "balance", "bill", "pin_set", "blocked",
                          "failed_pin_attempts", "sent_today", "sent_this_month"}
    assert shown["msisdn"] == "989361111111" and shown["pin_set"] is True
    assert shown["sent_today"] == 7_000 and shown["sent_this_month"] == 7_000
    other_day = cli("admin", "show", "09361111111", "--json", "--at", "2026-07-24T12:00:00+03:30")
    assert json.loads(other_day.stdout)["sent_today"] == 0

    assert cli("admin", "topup", "09361111111", "1000").exit_code == 0
    assert show(cli, "09361111111")["balance"] == shown["balance"] + 1000  # type: ignore[operator]
    assert "bill 22000" in cli("admin", "topup", "09391234567", "3000").stdout
    assert show(cli, "09391234567")["bill"] == 22_000
    assert cli("admin", "reset-pin", "09361111111").exit_code == 0
    assert show(cli, "09361111111")["pin_set"] is False
    assert cli("admin", "unblock", "09361111111").exit_code == 0

    history = cli("admin", "history", "09361111111", "--json")
    kinds = [json.loads(line)["kind"] for line in history.stdout.splitlines()]
    assert kinds[:3] == ["unblock", "reset_pin", "topup"]
    assert "transfer_out" in kinds and "wrong_pin" in kinds and "pin_changed" in kinds


def test_admin_errors_exit_codes(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("admin", "show", "09360000000").exit_code == 1
    assert cli("admin", "unblock", "09360000000").exit_code == 1
    assert cli("admin", "show", "12345").exit_code == 2
    assert cli("admin", "topup", "09361111111", "-5").exit_code == 2
    assert cli("admin", "show", "09361111111", "--at", "tomorrow").exit_code == 2
    assert cli("nope").exit_code == 2


def test_help_everywhere(cli) -> None:  # type: ignore[no-untyped-def]
    for args in (["--help"], ["replay", "--help"], ["admin", "--help"], ["admin", "show", "--help"],
                 ["demo", "--help"]):
        result = cli(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout
    assert "--redis" in cli("admin", "topup", "--help").stdout
