"""A hostile or broken SMSC cannot hurt the gateway (over TCP: fake SMSC, real gateway,
real Redis): every malformed PDU gets an SMPP error answer and the session lives on;
concatenated parts are validated, bounded per sender and expire; parts stay until the
command they form has been applied, and are never applied twice."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.store import StoreUnavailable
from smsgw.transport.reassembly import MAX_OPEN_MESSAGES_PER_SENDER, MAX_PARTS
from smsgw.transport.smpp.pdu import (
    DELIVER_SM,
    ENQUIRE_LINK,
    ESME_RINVCMDID,
    ESME_RINVCMDLEN,
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVOPTPARAMVAL,
    ESME_RINVOPTPARSTREAM,
    ESME_RINVPARLEN,
    ESME_RINVSRCADR,
    ESME_RMISSINGOPTPARAM,
    ESME_ROK,
    ESME_ROPTPARNOTALLWD,
    ESME_RX_P_APPN,
    ESME_RX_T_APPN,
    GENERIC_NACK,
    RESPONSE_BIT,
    UNBIND,
)
from smsgw.transport.smpp.sms_text import encode_reply
from tests.attacks import tried
from tests.test_smpp_gateway import ALI, SARA, Rig, start_rig, stop_rig

OTHER_SENDER = "989121112233"
SAR_REF, SAR_TOTAL, SAR_SEQ, MESSAGE_PAYLOAD = 0x020C, 0x020E, 0x020F, 0x0424
UDHI = 0x40


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("!HH", tag, len(value)) + value


def sar(reference: int, number: int, total: int) -> bytes:
    return (tlv(SAR_REF, reference.to_bytes(2, "big")) + tlv(SAR_TOTAL, bytes([total]))
            + tlv(SAR_SEQ, bytes([number])))


def udh(reference: int, number: int, total: int) -> bytes:
    return bytes([5, 0, 3, reference, total, number])


def deliver_body(message: bytes = b"hello", *, source: bytes = ALI.encode(),
                 destination: bytes = b"1112", esm_class: int = 0, data_coding: int = 1,
                 tlvs: bytes = b"", sm_length: int | None = None) -> bytes:
    """A deliver_sm body, field by field (SMPP 3.4, 4.6.1), any of them wrong at will."""
    length = len(message) if sm_length is None else sm_length
    return b"".join((
        b"\x00", b"\x01\x01", source, b"\x00", b"\x00\x00", destination, b"\x00",
        bytes((esm_class, 0, 0)), b"\x00", b"\x00", bytes((0, 0, data_coding, 0, length)),
        message, tlvs))


GOOD = deliver_body()

# (what is wrong, the body of a deliver_sm, the answer's status)
MALFORMED: list[tuple[str, bytes, int]] = [
    ("sar_msg_ref_num alone", deliver_body(tlvs=tlv(SAR_REF, b"\x00\x07")),
     ESME_RMISSINGOPTPARAM),
    ("sar without its reference",
     deliver_body(tlvs=tlv(SAR_TOTAL, b"\x02") + tlv(SAR_SEQ, b"\x01")), ESME_RMISSINGOPTPARAM),
    ("sar part 0", deliver_body(tlvs=sar(7, 0, 2)), ESME_RINVOPTPARAMVAL),
    ("sar part above the total", deliver_body(tlvs=sar(7, 3, 2)), ESME_RINVOPTPARAMVAL),
    ("sar total 0", deliver_body(tlvs=sar(7, 1, 0)), ESME_RINVOPTPARAMVAL),
    ("sar reference of one octet",
     deliver_body(tlvs=tlv(SAR_REF, b"\x07") + tlv(SAR_TOTAL, b"\x02") + tlv(SAR_SEQ, b"\x01")),
     ESME_RINVPARLEN),
    ("TLV runs past the PDU", deliver_body(tlvs=struct.pack("!HH", 0x1401, 40) + b"ab"),
     ESME_RINVOPTPARSTREAM),
    ("TLV header cut short", deliver_body(tlvs=b"\x14\x01"), ESME_RINVOPTPARSTREAM),
    ("one TLV twice", deliver_body(tlvs=tlv(0x1401, b"a") + tlv(0x1401, b"b")),
     ESME_RINVOPTPARSTREAM),
    ("short_message and message_payload", deliver_body(tlvs=tlv(MESSAGE_PAYLOAD, b"other")),
     ESME_ROPTPARNOTALLWD),
    ("sm_length past the PDU", deliver_body(sm_length=200), ESME_RINVMSGLEN),
    ("body cut in an address", GOOD[:8], ESME_RINVCMDLEN),
    ("empty body", b"", ESME_RINVCMDLEN),
    ("source address not ASCII", deliver_body(source="۰۹۳۵".encode()), ESME_RINVSRCADR),
    ("empty source address", deliver_body(source=b""), ESME_RINVSRCADR),
    ("destination with a brace", deliver_body(destination=b"11}2"), ESME_RINVDSTADR),
    ("UCS2 of an odd length", deliver_body(b"\x06\x33\x06", data_coding=8), ESME_RINVMSGLEN),
    ("UCS2 lone surrogate", deliver_body(b"\xd8\x00\x00\x41", data_coding=8), ESME_RX_P_APPN),
    ("data_coding 4 (binary)", deliver_body(data_coding=4), ESME_RX_P_APPN),
    ("ASCII text with 0xff", deliver_body(b"ab\xff"), ESME_RX_P_APPN),
    ("GSM text ending in an escape", deliver_body(b"ab\x1b", data_coding=0), ESME_RX_P_APPN),
    ("UDHI and no message", deliver_body(b"", esm_class=UDHI), ESME_RINVMSGLEN),
    ("UDH length past the message", deliver_body(b"\x09\x00\x03\x01", esm_class=UDHI),
     ESME_RINVMSGLEN),
    ("UDH element past its header", deliver_body(b"\x03\x00\x03\x01hi", esm_class=UDHI),
     ESME_RINVMSGLEN),
    ("UDH concatenation of 2 octets", deliver_body(b"\x04\x00\x02\x01\x02hi", esm_class=UDHI),
     ESME_RINVMSGLEN),
    ("UDH part 0", deliver_body(udh(9, 0, 2) + b"hi", esm_class=UDHI), ESME_RX_P_APPN),
    ("UDH part above the total", deliver_body(udh(9, 5, 2) + b"hi", esm_class=UDHI),
     ESME_RX_P_APPN),
    ("UDH total 0", deliver_body(udh(9, 0, 0) + b"hi", esm_class=UDHI), ESME_RX_P_APPN),
    (f"more than {MAX_PARTS} parts", deliver_body(udh(9, 1, MAX_PARTS + 1) + b"hi",
                                                  esm_class=UDHI), ESME_RX_P_APPN),
    ("a part of 2,000 characters",
     deliver_body(b"", tlvs=sar(9, 1, 2) + tlv(MESSAGE_PAYLOAD, b"x" * 2000)), ESME_RX_P_APPN),
]


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    started = await start_rig(redis_url, tmp_path)
    yield started
    await stop_rig(started)


async def assert_still_serving(rig: Rig, text: str = "09351234567:1000:55555") -> None:
    """No reconnect happened, and a good message afterwards is answered and applied."""
    before = await rig.balance(SARA)
    mo = rig.smsc.inject_mo(ALI, "1112", text)
    await rig.smsc.wait_answered(mo)
    assert mo.statuses == [ESME_ROK]
    assert await rig.balance(SARA) == before + 1000
    assert rig.gateway.client.stats["link_drops"] == 0
    assert rig.smsc.stats["binds"] == 1


async def test_every_malformed_deliver_sm_gets_its_error_answer(rig: Rig) -> None:
    answers = {}
    for what, body, _ in MALFORMED:
        response = await rig.smsc.request_raw(DELIVER_SM, body)
        answers[what] = (response.command_id, response.status)
    assert answers == {what: (DELIVER_SM | RESPONSE_BIT, status)
                       for what, _, status in MALFORMED}
    await assert_still_serving(rig)


async def test_a_redelivered_sar_reference_alone_costs_no_link(rig: Rig) -> None:
    """Today's KeyError: the link dropped at each delivery, for ever."""
    for _ in range(3):  # the SMSC delivers it again and again
        response = await rig.smsc.request_raw(DELIVER_SM, MALFORMED[0][1])
        assert response.status == ESME_RMISSINGOPTPARAM
    await assert_still_serving(rig)


async def test_requests_an_esme_does_not_serve_get_generic_nack(rig: Rig) -> None:
    for command_id in (0x00000004, 0x00000009, 0x00000102, 0x0000ABCD, 0x00000021):
        response = await rig.smsc.request_raw(command_id, b"\x00" * 12)
        assert (response.command_id, response.status) == (GENERIC_NACK, ESME_RINVCMDID)
    response = await rig.smsc.request_raw(ENQUIRE_LINK, b"junk after the header")
    assert response.status == ESME_ROK
    await assert_still_serving(rig)


async def test_a_changed_total_for_the_same_reference_is_refused(rig: Rig) -> None:
    first = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
        udh(5, 1, 2) + b"0935", esm_class=UDHI))
    changed = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
        udh(5, 2, 3) + b"1234567:1000:55555", esm_class=UDHI))
    assert (first.status, changed.status) == (ESME_ROK, ESME_RX_P_APPN)
    rest = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
        udh(5, 2, 2) + b"1234567:1000:55555", esm_class=UDHI))
    assert rest.status == ESME_ROK
    await rig.gateway.settle()
    assert await rig.balance(SARA) == 1000  # the message with its first total, whole


async def test_parts_are_bounded_per_sender(rig: Rig) -> None:
    async def first_part(sender: str, reference: int) -> int:
        response = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
            udh(reference, 1, 2) + b"x", source=sender.encode(), esm_class=UDHI))
        return response.status

    statuses = [await first_part(ALI, ref) for ref in range(MAX_OPEN_MESSAGES_PER_SENDER + 3)]
    assert statuses == ([ESME_ROK] * MAX_OPEN_MESSAGES_PER_SENDER + [ESME_RX_P_APPN] * 3)
    assert await first_part(OTHER_SENDER, 0) == ESME_ROK  # other senders are not hurt
    # a message already begun still completes
    rest = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
        udh(0, 2, 2) + b"y", esm_class=UDHI))
    assert rest.status == ESME_ROK
    # part numbers beyond the total never reach the store: one message, at most its parts
    for number in range(3, 256):
        response = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
            udh(1, number, 2) + b"z", esm_class=UDHI))
        assert response.status == ESME_RX_P_APPN
    sizes = [await rig.app.store.redis.hlen(key)
             async for key in rig.app.store.redis.scan_iter(match="s:{*}:parts:*")]
    assert max(sizes) <= 2 + 2  # total, id, and its two parts
    await assert_still_serving(rig)


async def test_parts_on_every_store(any_store_url: str) -> None:
    """Reassembly, the sender's bound and forgetting, on a server, embedded, a cluster."""
    from smsgw.app import build_app
    from smsgw.store import PartLimits
    from tests.conftest import make_settings

    app = build_app(make_settings(any_store_url))
    limits = PartLimits(ttl_seconds=60, open_messages=2)
    try:
        store = app.store
        assert (await store.add_part(ALI, "1112:1", 2, 2, "b", limits, "m1")).state == "partial"
        assert (await store.add_part(ALI, "1112:2", 1, 3, "x", limits, "m2")).state == "partial"
        assert (await store.add_part(ALI, "1112:3", 1, 2, "x", limits, "m3")).state == "too_many"
        assert (await store.add_part(ALI, "1112:1", 1, 3, "a", limits, "m4")).state \
            == "total_changed"
        whole = await store.add_part(ALI, "1112:1", 1, 2, "a", limits, "m5")
        assert (whole.state, whole.text, whole.message_id) == ("whole", "ab", "m1")
        again = await store.add_part(ALI, "1112:1", 1, 2, "a", limits, "m6")
        assert again.message_id == "m1"  # kept until forgotten: the same message, same id
        await store.forget_parts(ALI, "1112:1")
        assert (await store.add_part(ALI, "1112:3", 1, 2, "x", limits, "m7")).state == "partial"
    finally:
        await app.close()


async def test_parts_expire_a_fixed_time_after_the_first(redis_url: str) -> None:
    from smsgw.app import build_app
    from smsgw.store import PartLimits
    from smsgw.store.keys import parts_key
    from tests.conftest import make_settings

    app = build_app(make_settings(redis_url))
    limits = PartLimits(ttl_seconds=2, open_messages=4)
    try:
        await app.store.add_part(ALI, "1112:1", 1, 3, "a", limits, "m1")
        await asyncio.sleep(1.2)
        await app.store.add_part(ALI, "1112:1", 2, 3, "b", limits, "m1")
        assert await app.store.redis.pttl(parts_key(ALI, "1112:1")) <= 800  # not refreshed
        await asyncio.sleep(1.0)
        assert not await app.store.redis.exists(parts_key(ALI, "1112:1"))
        # expired messages no longer count toward the sender's bound
        for reference in range(4):
            assert (await app.store.add_part(ALI, f"1112:{10 + reference}", 1, 2, "x",
                                             limits, "m")).state == "partial"
        assert (await app.store.add_part(ALI, "1112:20", 1, 2, "x", limits, "m")).state \
            == "too_many"
    finally:
        await app.close()


def long_transfer(parts: int) -> str:
    """A transfer padded with spaces to `parts` GSM parts."""
    command = "09351234567:10000:55555"
    text = command + " " * (153 * (parts - 1) + 1 - len(command))
    assert len(encode_reply(text)) == parts
    return text


async def test_a_29_part_message_whose_processing_fails_is_applied_on_redelivery(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    store = rig.app.store
    original = store.run_command
    failures: list[str] = []

    async def down_once(*args: Any) -> dict[str, Any]:
        if not failures:
            failures.append("store down")
            raise StoreUnavailable("connection refused")
        return await original(*args)

    monkeypatch.setattr(store, "run_command", down_once)
    mo = rig.smsc.inject_mo(ALI, "1112", long_transfer(29))
    await rig.smsc.wait_answered(mo, timeout=20)
    assert failures and mo.statuses == [ESME_ROK] * 28 + [ESME_RX_T_APPN, ESME_ROK]
    await rig.gateway.settle()
    assert await rig.balance(SARA) == 10_000 and await rig.balance(ALI) == 50_000 - 10_500
    assert [key async for key in store.redis.scan_iter(match="s:{*}:parts:*")] == []


async def test_a_part_delivered_again_after_the_whole_was_applied_applies_nothing(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole was applied but its parts could not be dropped (the store failed just
    then), and the SMSC delivers the last part again: the command is not applied twice."""
    async def cannot_forget(*_: Any) -> None:
        raise StoreUnavailable("connection reset")

    monkeypatch.setattr(rig.app.store, "forget_parts", cannot_forget)
    parts = encode_reply(long_transfer(3))
    for part in [*parts, parts[-1], parts[-1]]:
        response = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
            part.payload, esm_class=part.esm_class, data_coding=0))
        assert response.status == ESME_ROK
    await rig.gateway.settle()
    assert await rig.balance(SARA) == 10_000  # once
    assert await rig.balance(ALI) == 50_000 - 10_500


# -- generated hostile PDUs against a live session ----------------------------------------

def _mutate(data: bytes, at: int, value: int) -> bytes:
    if not data:
        return data
    at %= len(data)
    return data[:at] + bytes([value]) + data[at + 1:]


good_parts = [part.payload for part in encode_reply("09351234567:1000:55555 " * 12)]
hostile_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(_mutate, st.sampled_from([GOOD, *(deliver_body(p, esm_class=UDHI,
                                                             data_coding=0)
                                                for p in good_parts)]),
              st.integers(0, 400), st.integers(0, 255)),
    st.builds(lambda message, esm, dcs, tlvs: deliver_body(message, esm_class=esm,
                                                           data_coding=dcs, tlvs=tlvs),
              st.binary(max_size=140), st.sampled_from([0, UDHI, 0x04, 0xFF]),
              st.sampled_from([0, 1, 3, 4, 8, 0xF0]),
              st.lists(st.builds(tlv, st.sampled_from([SAR_REF, SAR_TOTAL, SAR_SEQ,
                                                       MESSAGE_PAYLOAD, 0x001E, 0x1401,
                                                       0xFFFF]),
                                 st.binary(max_size=6)), max_size=4).map(b"".join)),
    st.builds(lambda header, text: deliver_body(header + text, esm_class=UDHI),
              st.binary(max_size=12), st.binary(max_size=20)),
    st.builds(lambda sar_values: deliver_body(tlvs=sar(*sar_values)),
              st.tuples(st.integers(0, 65535), st.integers(0, 255), st.integers(0, 255))),
    st.lists(st.builds(tlv, st.sampled_from([SAR_REF, SAR_TOTAL, SAR_SEQ]),
                       st.binary(min_size=1, max_size=2)),
             max_size=3, unique_by=lambda item: item[:2]).map(
        lambda items: deliver_body(tlvs=b"".join(items))),  # some sar_* TLVs, not all
)
command_ids = st.one_of(st.just(DELIVER_SM), st.just(DELIVER_SM), st.just(ENQUIRE_LINK),
                        st.integers(0, 0x7FFFFFFF).filter(lambda c: c != UNBIND))


async def test_generated_hostile_pdus_are_answered_and_the_session_lives(rig: Rig) -> None:
    """One live session takes every generated PDU (hypothesis runs in a thread and sends
    each through this event loop); then a good message is still answered."""
    loop = asyncio.get_running_loop()

    async def attack(command_id: int, body: bytes) -> None:
        response = await rig.smsc.request_raw(command_id, body)
        assert response.command_id in (command_id | RESPONSE_BIT, GENERIC_NACK)
        if response.command_id == GENERIC_NACK:
            assert response.status != ESME_ROK
        assert rig.gateway.client.stats["link_drops"] == 0 and rig.gateway.client.bound

    @settings(max_examples=300, deadline=None, database=None)
    @given(command_id=command_ids, body=hostile_bodies)
    def each(command_id: int, body: bytes) -> None:
        tried("a hostile SMSC's PDU is answered, the session lives")
        asyncio.run_coroutine_threadsafe(attack(command_id, body), loop).result(30)

    await asyncio.to_thread(each)
    await assert_still_serving(rig)


async def test_an_empty_smsc_message_id_makes_no_message_a_repeat(
        redis_url: str, tmp_path: Path) -> None:
    tag = 0x1401
    rig = await start_rig(redis_url, tmp_path, message_id_tlv=tag)
    try:
        for amount in (1000, 2000):
            response = await rig.smsc.request_raw(DELIVER_SM, deliver_body(
                f"09351234567:{amount}:55555".encode(), tlvs=tlv(tag, b"\x00")))
            assert response.status == ESME_ROK
        await rig.gateway.settle()
        assert await rig.balance(SARA) == 3000  # both applied
    finally:
        await stop_rig(rig)
