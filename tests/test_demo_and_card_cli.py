"""`smsgw demo` as a new user sees it, and the branch's card commands."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_otp_rules import CARD, FOREIGN, MOBILE
from tests.test_processes import env_for
from tests.test_replay_and_admin import cli  # noqa: F401  (fixture)


def test_demo_plays_the_whole_conversation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run([sys.executable, "-m", "smsgw", "demo"], cwd=tmp_path,
                            env=env_for(COLUMNS="200"), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("09361111111 → 1112", "رمز ثبت شد", "رمز انتقال اعتبار شما تغییر کرد",
                     "بابت قبض", "بخشی از دستور کم است", "مسدود شد", "smsgw admin unblock",
                     "این شماره سرویسی ندارد", "رمز پویا:", "Digikala", "valid=True",
                     "used: single use", "balance 10500",
                     "09361111111 → 1113  BAL", "موجودی شما ۱۰٬۵۰۰ ریال",
                     "به ۰۹۳۹۱۲۳۴۵۶۷ ۵٬۰۰۰"):
        assert expected in out, expected


def test_card_commands(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    added = cli("admin", "card", "add", CARD, "--mobile", "0912 111 2233", "--type", "debit",
                "--static-password", "-", stdin="from-stdin-9\n")
    assert added.exit_code == 0, added.output
    assert CARD not in added.stdout and CARD[-4:] in added.stdout
    shown = json.loads(cli("admin", "card", "show", CARD, "--json").stdout)
    assert shown == {"card": "…" + CARD[-4:], "type": "debit", "mobile": MOBILE,
                     "state": "active", "otp_state": "none"}
    assert cli("admin", "card", "set-mobile", CARD, "09351234567").exit_code == 0
    disabled = cli("admin", "card", "disable", CARD)
    assert disabled.exit_code == 0 and disabled.stdout.endswith(": disabled\n")
    blocked = cli("admin", "card", "block", CARD)
    assert blocked.exit_code == 0 and blocked.stdout.endswith(": blocked\n")
    assert json.loads(cli("admin", "card", "show", CARD, "--json").stdout)["state"] == "blocked"
    history = cli("admin", "history", CARD, "--json").stdout.splitlines()
    assert [json.loads(line)["kind"] for line in history] == [
        "card_block", "card_disable", "card_set_mobile", "card_add"]
    assert "from-stdin-9" not in "".join(history)
    again = cli("admin", "card", "add", CARD, "--mobile", MOBILE, "--type", "debit",
                "--static-password", "abcd")
    assert again.exit_code == 1 and "already registered" in again.stderr
    foreign = cli("admin", "card", "add", FOREIGN, "--mobile", MOBILE, "--type", "debit",
                  "--static-password", "abcd")
    assert foreign.exit_code == 2 and "not one of the bank's cards" in foreign.stderr
    bad = cli("admin", "card", "show", "1234567812345678")
    assert bad.exit_code == 2 and "Luhn" in bad.stderr
    wrong_check_digit = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)
    assert cli("admin", "card", "show", wrong_check_digit).exit_code == 2
