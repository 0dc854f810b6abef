"""Breaks found by an outside attack round (attack12), each with the test that showed it."""

from __future__ import annotations

import io
from pathlib import Path

from smsgw import admin
from smsgw.app import build_app
from smsgw.core.clock import now
from smsgw.transport.log_replay import previous_replies, replay
from smsgw.transport.msglog import read_records
from tests.conftest import make_settings
from tests.test_smpp_gateway import ALI, Rig, rig  # noqa: F401 (a fixture)

CARD = "6279611234567894"


async def test_an_otp_the_payment_system_asked_for_is_no_inbound_record_on_replay(
        rig: Rig, tmp_path: Path) -> None:
    """The SMS of an HTTP OTP request answers no inbound message; its log record must
    still read back as outbound, or replay takes it for a message from the short code."""
    await admin.card_add(rig.app.store, rig.app.hasher, CARD, ALI, "debit", "static-pw", now())
    answer = await rig.app.otp.request_for_payment(CARD, 1_500_000, "shop", now())
    rig.gateway.deliver(answer.replies)
    await rig.smsc.wait_mt(1)
    await rig.gateway.settle()
    lines = (rig.log_dir / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    records = list(read_records(lines))
    assert len(records) == 1 and not records[0].is_inbound  # type: ignore[union-attr]
    fresh = build_app(make_settings(""))
    out, report = io.StringIO(), io.StringIO()
    summary = await replay(fresh.pipeline, fresh.hasher, lines, out, report,
                           before=previous_replies(lines))
    await fresh.close()
    assert summary.inbound == 0 and out.getvalue() == ""
