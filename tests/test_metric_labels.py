"""No metric label carries a value that a sender or the SMSC chose: every label of the
message and receipt metrics comes from a fixed set, so random destinations and receipt
states over the wire add no series (interfaces.md: an unconfigured short code is
`other`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from smsgw.core import replies
from smsgw.observability import metrics
from smsgw.transport.smpp.pdu import DELIVER_SM, ESME_ROK
from tests.attacks import tried
from tests.test_hostile_smsc import deliver_body
from tests.test_smpp_gateway import ALI, Rig, start_rig, stop_rig

WATCHED = ("smsgw_messages_in_total", "smsgw_messages_out_total",
           "smsgw_delivery_receipts_total")
OUTCOMES = {"no_reply", "store_down", "part_refused", "accepted", "refused"}


def series() -> dict[str, set[tuple[tuple[str, str], ...]]]:
    found: dict[str, set[tuple[tuple[str, str], ...]]] = {name: set() for name in WATCHED}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name in WATCHED:
                found[sample.name].add(tuple(sorted(sample.labels.items())))
    return found


def assert_labels_from_fixed_sets(short_codes: frozenset[str]) -> None:
    kinds = replies.kinds() | {"other"}
    for name, label_sets in series().items():
        for labels in map(dict, label_sets):
            if "service" in labels:
                assert labels["service"] in short_codes | {"other"}, (name, labels)
            if "kind" in labels:
                assert labels["kind"] in kinds, (name, labels)
            if "outcome" in labels:
                assert labels["outcome"] in kinds | OUTCOMES, (name, labels)
            if "state" in labels:
                assert labels["state"] in metrics.RECEIPT_STATES | {"other", "unknown"}, labels


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    started = await start_rig(redis_url, tmp_path)
    yield started
    await stop_rig(started)


def receipt_body(state: bytes) -> bytes:
    text = b"id:0000abcd sub:001 dlvrd:001 submit date:2607011200 done date:2607011200 stat:"
    return deliver_body(text + state + b" err:000 Text:", source=ALI.encode(),
                        destination=b"1112", esm_class=0x04)


async def test_unconfigured_short_codes_and_odd_receipt_states_add_no_series(rig: Rig) -> None:
    for destination in ("1113x", "99999", "1112", "7000", "hello"):
        await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, destination, "x"))
    for state in (b"DELIVRD", b"MADEUP1", b"MADEUP2", b""):
        assert (await rig.smsc.request_raw(DELIVER_SM, receipt_body(state))).status == ESME_ROK
    await rig.gateway.settle()
    labels = {dict(s).get("service") for s in series()["smsgw_messages_in_total"]}
    assert {"1113x", "99999", "hello"}.isdisjoint(labels) and "other" in labels
    states = {dict(s)["state"] for s in series()["smsgw_delivery_receipts_total"]}
    assert {"MADEUP1", "MADEUP2"}.isdisjoint(states) and "other" in states
    assert_labels_from_fixed_sets(rig.app.router.short_codes)


addresses = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                           exclude_characters="{}"), min_size=1, max_size=20)


async def test_random_destinations_and_receipt_states_keep_the_series_bounded(rig: Rig) -> None:
    loop = asyncio.get_running_loop()
    short_codes = rig.app.router.short_codes

    async def send(destination: str, state: bytes) -> None:
        await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, destination, "x"), timeout=10)
        await rig.smsc.request_raw(DELIVER_SM, receipt_body(state))

    @settings(max_examples=150, deadline=None, database=None)
    @given(destination=addresses, state=st.binary(max_size=12).filter(
        lambda s: b" " not in s and b"\x00" not in s))
    def each(destination: str, state: bytes) -> None:
        tried("metric labels come from fixed sets")
        asyncio.run_coroutine_threadsafe(send(destination, state), loop).result(30)

    await asyncio.to_thread(each)
    await rig.gateway.settle()
    assert_labels_from_fixed_sets(short_codes)
    bound = {"smsgw_messages_in_total": (len(short_codes) + 1) * (len(replies.kinds()) + 5),
             "smsgw_messages_out_total": (len(replies.kinds()) + 1) * 2,
             "smsgw_delivery_receipts_total": len(metrics.RECEIPT_STATES) + 2}
    assert {name: len(found) <= bound[name] for name, found in series().items()} == \
        dict.fromkeys(WATCHED, True)
