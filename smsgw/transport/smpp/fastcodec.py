"""A direct decoder for the two hot PDUs, deliver_sm and submit_sm.

aiosmpplib's `from_pdu` builds and validates a dataclass per message (8 % of the gateway's
time and most of the fake SMSC's); this reads the same fields with struct. aiosmpplib stays
the codec of everything else, and the reference: tests decode random PDUs with both.
"""

from __future__ import annotations

import struct

from smsgw.core.records import record
from smsgw.transport.smpp.pdu import (
    ESME_RINVCMDLEN,
    ESME_RINVDSTADR,
    ESME_RINVMSGLEN,
    ESME_RINVOPTPARAMVAL,
    ESME_RINVOPTPARSTREAM,
    ESME_RINVPARLEN,
    ESME_RINVSRCADR,
    ESME_RMISSINGOPTPARAM,
    ESME_ROPTPARNOTALLWD,
    ESME_RX_P_APPN,
    PduError,
    RawPdu,
)
from smsgw.transport.smpp.sms_text import gsm_decode

MESSAGE_PAYLOAD = 0x0424
SAR_MSG_REF_NUM, SAR_TOTAL_SEGMENTS, SAR_SEGMENT_SEQNUM = 0x020C, 0x020E, 0x020F
RECEIPTED_MESSAGE_ID = 0x001E
MESSAGE_STATE = 0x0427
# SMPP 3.4 5.2.28 message_state values, as the receipt text writes them (stat:...)
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                  6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
ESM_UDHI = 0x40


@record
class ShortMessage:
    source: str
    destination: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    text: str
    segment: tuple[int, int, int] | None  # (reference, number, total)
    tlvs: dict[int, bytes]

    @property
    def is_receipt(self) -> bool:
        return (self.esm_class & 0b00111100) >> 2 == 1

    def receipt_fields(self) -> dict[str, str]:
        """The receipt's fields (`id`, `stat`, `err`, ...): the receipted_message_id and
        message_state TLVs where present, else the receipt text (`id:... stat:DELIVRD`)."""
        fields: dict[str, str] = {}
        for item in self.text.split(" "):
            key, sep, value = item.partition(":")
            if sep:
                fields[key.lower()] = value
        receipted = self.tlvs.get(RECEIPTED_MESSAGE_ID)
        if receipted and receipted.rstrip(b"\x00"):
            fields["id"] = receipted.rstrip(b"\x00").decode("ascii", "replace")
        state = self.tlvs.get(MESSAGE_STATE)
        if state and len(state) == 1 and state[0] in MESSAGE_STATES:
            fields["stat"] = MESSAGE_STATES[state[0]]
        return fields


def decode_short_message(raw: RawPdu) -> ShortMessage:
    """The fields of a deliver_sm or submit_sm; PduError, with the status that fits the
    first thing wrong (SMPP 3.4, 5.1.3), for anything malformed."""
    try:
        return _decode(raw.data)
    except _Malformed as exc:
        raise PduError(f"malformed short message: {exc}", exc.status, raw.sequence) from exc
    except (struct.error, IndexError, ValueError) as exc:  # a mandatory field cut short
        raise PduError(f"short message body cut short: {exc}", ESME_RINVCMDLEN,
                       raw.sequence) from exc


class _Malformed(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _cstring(data: bytes, start: int, limit: int = 65) -> tuple[str, int]:
    end = data.index(b"\x00", start, start + limit)
    return data[start:end].decode("latin-1"), end + 1


def _address(data: bytes, start: int, status: int) -> tuple[str, int]:
    """An address: printable ASCII without braces (it becomes part of store keys, whose
    hash tag is in braces), not empty."""
    value, index = _cstring(data, start, 21)
    if not value or not all(0x21 <= ord(c) <= 0x7E and c not in "{}" for c in value):
        raise _Malformed(f"address {value!r}", status)
    return value, index


def _decode(data: bytes) -> ShortMessage:
    _, index = _cstring(data, 16, 6)  # service_type
    index += 2  # source TON, NPI
    source, index = _address(data, index, ESME_RINVSRCADR)
    index += 2
    destination, index = _address(data, index, ESME_RINVDSTADR)
    esm_class = data[index]
    index += 3  # esm_class, protocol_id, priority_flag
    _, index = _cstring(data, index, 17)  # schedule_delivery_time
    _, index = _cstring(data, index, 17)  # validity_period
    registered_delivery, data_coding = data[index], data[index + 2]
    length = data[index + 4]
    index += 5
    payload = data[index:index + length]
    if len(payload) != length:
        raise _Malformed("short_message runs past the PDU", ESME_RINVMSGLEN)
    tlvs = _tlvs(data, index + length)
    if MESSAGE_PAYLOAD in tlvs:
        if payload:
            raise _Malformed("both short_message and message_payload", ESME_ROPTPARNOTALLWD)
        payload = tlvs[MESSAGE_PAYLOAD]
    segment = None
    if esm_class & ESM_UDHI:
        segment, payload = _udh(payload)
    else:
        segment = _sar(tlvs)
    return ShortMessage(source, destination, esm_class, registered_delivery, data_coding,
                        _text(payload, data_coding), segment, tlvs)


def _tlvs(data: bytes, index: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while index < len(data):
        if len(data) - index < 4:
            raise _Malformed("a TLV header cut short", ESME_RINVOPTPARSTREAM)
        tag, length = struct.unpack_from("!HH", data, index)
        value = data[index + 4:index + 4 + length]
        if len(value) != length:
            raise _Malformed("TLV runs past the PDU", ESME_RINVOPTPARSTREAM)
        if tag in found:  # two values for one field: which one would count?
            raise _Malformed(f"TLV {tag:#06x} twice", ESME_RINVOPTPARSTREAM)
        if tag in _TLV_LENGTHS and not _TLV_LENGTHS[tag][0] <= length <= _TLV_LENGTHS[tag][1]:
            raise _Malformed(f"TLV {tag:#06x} of {length} octets", ESME_RINVPARLEN)
        found[tag] = value
        index += 4 + length
    return found


# The TLVs we read, and the lengths SMPP 3.4 (5.3.2) allows them
_TLV_LENGTHS = {SAR_MSG_REF_NUM: (2, 2), SAR_TOTAL_SEGMENTS: (1, 1),
                SAR_SEGMENT_SEQNUM: (1, 1), RECEIPTED_MESSAGE_ID: (0, 65)}
_SAR_TAGS = (SAR_MSG_REF_NUM, SAR_SEGMENT_SEQNUM, SAR_TOTAL_SEGMENTS)


def _sar(tlvs: dict[int, bytes]) -> tuple[int, int, int] | None:
    """(reference, number, total) from the sar_* TLVs: all three, or none."""
    present = [tag in tlvs for tag in _SAR_TAGS]
    if not any(present):
        return None
    if not all(present):
        raise _Malformed("sar_* TLVs incomplete", ESME_RMISSINGOPTPARAM)
    reference, number, total = (int.from_bytes(tlvs[tag], "big") for tag in _SAR_TAGS)
    return _segment(reference, number, total, ESME_RINVOPTPARAMVAL)


def _segment(reference: int, number: int, total: int, status: int) -> tuple[int, int, int]:
    if not 1 <= number <= total:
        raise _Malformed(f"part {number} of {total}", status)
    return reference, number, total


def _udh(payload: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """The concatenation element of a user data header, and the text after the header."""
    if not payload or 1 + payload[0] > len(payload):
        raise _Malformed("user data header runs past the message", ESME_RINVMSGLEN)
    header, rest = payload[1:1 + payload[0]], payload[1 + payload[0]:]
    segment = None
    position = 0
    while position < len(header):
        if position + 2 > len(header) or position + 2 + header[position + 1] > len(header):
            raise _Malformed("user data header element runs past the header",
                             ESME_RINVMSGLEN)
        element, size = header[position], header[position + 1]
        value = header[position + 2:position + 2 + size]
        if element in _CONCAT_SIZES and segment is None:
            if size != _CONCAT_SIZES[element]:
                raise _Malformed(f"concatenation element of {size} octets", ESME_RINVMSGLEN)
            reference = value[0] if element == 0x00 else int.from_bytes(value[:2], "big")
            segment = _segment(reference, value[-1], value[-2], ESME_RX_P_APPN)
        position += 2 + size
    return segment, rest


_CONCAT_SIZES = {0x00: 3, 0x08: 4}  # 8-bit and 16-bit reference numbers (GSM 03.40)


def _text(payload: bytes, data_coding: int) -> str:
    if data_coding == 8 and len(payload) % 2:
        raise _Malformed("UCS2 text of an odd number of octets", ESME_RINVMSGLEN)
    try:
        if data_coding == 8:
            return payload.decode("utf-16-be")
        if data_coding == 0:
            return gsm_decode(payload)
        if data_coding == 3:
            return payload.decode("latin-1")
        if data_coding == 1:
            return payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _Malformed(f"text does not decode: {exc}", ESME_RX_P_APPN) from exc
    raise _Malformed(f"data_coding {data_coding} is not text we read", ESME_RX_P_APPN)
