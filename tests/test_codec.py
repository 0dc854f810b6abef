"""Our fast submit_sm encoder makes exactly aiosmpplib's bytes; parts fit the SMS limits."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.transport.smpp.builders import (
    aiosmpplib_deliver_sm_pdu,
    deliver_sm_pdu,
    fast_submit_sm_pdu,
    submit_sm_pdu,
)
from smsgw.transport.smpp.sms_text import Part, encode_reply

texts = st.text(alphabet=st.sampled_from("abc XYZ 0123 {}[]€ سلام ریال ۱۲۳ 😀\n"), max_size=400)
numbers = st.sampled_from(["1112", "7000", "989351234567", "989121112233", "98"])


# (fast builder, aiosmpplib's builder, values of the last argument): the same bytes
Builder = Callable[[int, str, str, Part, int], bytes]
BUILDER_PAIRS: dict[str, tuple[Builder, Builder, list[int]]] = {
    "submit_sm": (fast_submit_sm_pdu, submit_sm_pdu, [0, 1]),  # registered_delivery
    "deliver_sm": (deliver_sm_pdu, aiosmpplib_deliver_sm_pdu, [0, 0x04]),  # esm_class bits
}


@pytest.mark.parametrize("pdu", sorted(BUILDER_PAIRS))
def test_fast_builders_equal_aiosmpplib(pdu: str) -> None:
    fast, reference, lasts = BUILDER_PAIRS[pdu]

    @settings(max_examples=400, deadline=None)
    @given(texts, numbers, numbers, st.integers(1, 0x7FFFFFFF), st.sampled_from(lasts))
    def same_bytes(text: str, source: str, destination: str, sequence: int,
                   last: int) -> None:
        for part in encode_reply(text or "x"):
            assert fast(sequence, source, destination, part, last) == \
                reference(sequence, source, destination, part, last)

    same_bytes()


@settings(max_examples=400, deadline=None)
@given(texts)
def test_every_part_fits_one_sms(text: str) -> None:
    parts = encode_reply(text or "x")
    for part in parts:
        if part.encoding == "ucs2":
            assert len(part.payload) <= 140
        else:
            assert len(part.payload) <= 160  # unpacked septets, UDH included
    if len(parts) > 1:
        references = {part.payload[3] for part in parts}
        assert len(references) == 1
        assert [part.payload[5] for part in parts] == list(range(1, len(parts) + 1))
        assert all(part.payload[4] == len(parts) for part in parts)


@settings(max_examples=400, deadline=None)
@given(texts, numbers, numbers, st.sampled_from(["gsm0338", "ucs2", "latin_1"]))
def test_fast_decoder_agrees_with_aiosmpplib(text: str, source: str, destination: str,
                                             coding: str) -> None:
    from aiosmpplib.protocol import DeliverSm

    from smsgw.transport.smpp.builders import deliver_sm_pdu
    from smsgw.transport.smpp.fastcodec import decode_short_message
    from smsgw.transport.smpp.pdu import read_pdu_bytes
    from smsgw.transport.smpp.sms_text import Part

    parts = encode_reply(text or "x")
    if coding == "latin_1":
        try:
            parts = [Part("latin_1", (text or "x").encode("latin-1")[:140], 0)]
        except UnicodeEncodeError:
            return
    for part in parts:
        raw = read_pdu_bytes(deliver_sm_pdu(7, source, destination, part))
        ours = decode_short_message(raw)
        theirs = DeliverSm.from_pdu(raw.data, _header(raw), default_encoding="gsm0338")
        assert ours.text == (theirs.short_message or theirs.message_payload)
        assert (ours.source, ours.destination) == (theirs.source.number,
                                                   theirs.destination.number)
        if theirs.is_segmented():
            reference, number, total = theirs.get_segmentation_data()
            assert ours.segment == (reference, number, total)
        else:
            assert ours.segment is None


def _header(raw):  # type: ignore[no-untyped-def]
    from aiosmpplib.state import PduHeader, SmppCommand, SmppCommandStatus

    return PduHeader(len(raw.data), SmppCommand(raw.command_id),
                     SmppCommandStatus(raw.status), raw.sequence)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_fast_decoder_never_crashes_on_garbage(body: bytes) -> None:
    from smsgw.transport.smpp.fastcodec import decode_short_message
    from smsgw.transport.smpp.pdu import PduError, RawPdu

    raw = RawPdu(5, 0, 1, bytes(16) + body)
    with contextlib.suppress(PduError):
        decode_short_message(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=1, max_size=6), st.data())
def test_framer_finds_the_same_pdus_however_the_stream_is_cut(
        messages: list[str], data: st.DataObject) -> None:
    """TCP may deliver a PDU in pieces or several in one read: each arrives once, whole."""
    from smsgw.transport.smpp.pdu import PduFramer

    sent = [deliver_sm_pdu(seq, "989351234567", "1112", part)
            for seq, text in enumerate(messages, 1) for part in encode_reply(text or "x")]
    stream = b"".join(sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = PduFramer()
    received = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        received += [raw.data for raw in framer.feed(stream[start:end])]
    assert received == sent
    assert framer.pending == 0


def test_framer_stops_at_an_impossible_length_after_the_whole_pdus_before_it() -> None:
    from smsgw.transport.smpp.pdu import FramingError, PduFramer

    good = deliver_sm_pdu(1, "989351234567", "1112", encode_reply("hi")[0])
    framer = PduFramer()
    received = []
    with pytest.raises(FramingError):
        for raw in framer.feed(good + b"\x00\x00\x00\x05" + b"\x00" * 12):
            received.append(raw.sequence)
    assert received == [1]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=60)
       | st.text(alphabet=st.sampled_from("09:PIN ab$@_[]{}~^\\|`€\n\r"), max_size=60))
def test_gsm_shortcut_agrees_with_aiosmpplib(text: str) -> None:
    """Plain ASCII skips aiosmpplib's codec; the octets and the text back are its own."""
    from aiosmpplib.codec import GSM7BitCodec

    from smsgw.transport.smpp.sms_text import gsm_decode, gsm_encode

    codec = GSM7BitCodec()
    if not GSM7BitCodec.is_gsm_text(text):
        assert gsm_encode(text) is None
        return
    expected = bytes(codec.encode(text)[0])
    assert gsm_encode(text) == expected
    assert gsm_decode(expected) == codec.decode(expected)[0]
