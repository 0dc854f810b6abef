"""Breaks found by an outside attack round (attack12), each with the test that showed it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smsgw import admin
from smsgw.app import build_app
from smsgw.core.clock import now
from smsgw.subscribers import BadInputFile, parse_subscriber_csv
from smsgw.transport.log_replay import previous_replies, replay
from smsgw.transport.msglog import read_records
from tests.conftest import make_settings
from tests.test_masking import live_and_replayed, shown
from tests.test_smpp_gateway import ALI, Rig, start_rig, stop_rig

CARD = "6279611234567894"


@pytest.fixture
async def gateway_rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    started = await start_rig(redis_url, tmp_path)
    yield started
    await stop_rig(started)


async def test_an_otp_the_payment_system_asked_for_is_no_inbound_record_on_replay(
        gateway_rig: Rig) -> None:
    """The SMS of an HTTP OTP request answers no inbound message; its log record must
    still read back as outbound, or replay takes it for a message from the short code."""
    app = gateway_rig.app
    await admin.card_add(app.store, app.hasher, CARD, ALI, "debit", "static-pw", now())
    answer = await gateway_rig.app.otp.request_for_payment(CARD, 1_500_000, "shop", now())
    await gateway_rig.gateway.deliver(answer.replies)
    await gateway_rig.smsc.wait_mt(1)
    await gateway_rig.gateway.settle()
    lines = (gateway_rig.log_dir / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    records = list(read_records(lines))
    assert len(records) == 1 and not records[0].is_inbound  # type: ignore[union-attr]
    fresh = build_app(make_settings(""))
    out, report = io.StringIO(), io.StringIO()
    summary = await replay(fresh.router, fresh.hasher, lines, out, report,
                           before=previous_replies(lines, fresh.hasher))
    await fresh.close()
    assert summary.inbound == 0 and out.getvalue() == ""


@pytest.mark.parametrize("row", ["09361111111,prepaid,50000,7000",
                                 "09361111111,postpaid,7000,50000"])
def test_a_row_with_an_amount_its_plan_has_not_is_a_bad_row(row: str) -> None:
    """A prepaid line stating a bill (or a postpaid one a balance) was loaded with that
    amount stored unseen (`show` prints 0, the money total counts it): a bad row."""
    content = "msisdn,plan,balance,bill\n09351234567,prepaid,100,0\n" + row + "\n"
    with pytest.raises(BadInputFile) as caught:
        parse_subscriber_csv(content)
    assert [line for line, _ in caught.value.problems] == [3]


@pytest.mark.parametrize("text", ["09351234567:55555:10000", "09351234567:12345678:1000",
                                  "09351234567:12,345,678:10000"])
async def test_a_pin_typed_in_the_amounts_place_is_not_in_the_log(store_url: str,
                                                                  text: str) -> None:
    """A careless subscriber swaps amount and PIN: the amount (5-8 digits, beyond the
    maximum: no reply shows it) is the PIN. The log may not show it; replay stays
    faithful."""
    app = build_app(make_settings(store_url))
    masked, live, replayed = await live_and_replayed(app, "1112", text)
    await app.close()
    secret = text.split(":")[1]
    assert secret not in masked and secret.replace(",", "") not in masked.replace(",", "")
    assert shown(replayed) == shown(live)
