"""A direct decoder for the two hot PDUs, deliver_sm and submit_sm.

aiosmpplib's `from_pdu` builds and validates a dataclass per message (8 % of the gateway's
time and most of the fake SMSC's); this reads the same fields with struct. aiosmpplib stays
the codec of everything else, and the reference: tests decode random PDUs with both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from smsgw.transport.smpp.pdu import ESME_RINVCMDLEN, PduError, RawPdu
from smsgw.transport.smpp.sms_text import gsm_decode

MESSAGE_PAYLOAD = 0x0424
SAR_MSG_REF_NUM, SAR_TOTAL_SEGMENTS, SAR_SEGMENT_SEQNUM = 0x020C, 0x020E, 0x020F
RECEIPTED_MESSAGE_ID = 0x001E
ESM_UDHI = 0x40


@dataclass(frozen=True, slots=True)
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
        fields: dict[str, str] = {}
        for item in self.text.split(" "):
            key, sep, value = item.partition(":")
            if sep:
                fields[key.lower()] = value
        receipted = self.tlvs.get(RECEIPTED_MESSAGE_ID)
        if "id" not in fields and receipted:
            fields["id"] = receipted.rstrip(b"\x00").decode("ascii", "replace")
        return fields


def decode_short_message(raw: RawPdu) -> ShortMessage:
    try:
        return _decode(raw.data)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise PduError(f"cannot decode short message: {exc}", ESME_RINVCMDLEN,
                       raw.sequence) from exc


def _cstring(data: bytes, start: int, limit: int = 65) -> tuple[str, int]:
    end = data.index(b"\x00", start, start + limit)
    return data[start:end].decode("ascii"), end + 1


def _decode(data: bytes) -> ShortMessage:
    _, index = _cstring(data, 16, 6)  # service_type
    index += 2  # source TON, NPI
    source, index = _cstring(data, index, 21)
    index += 2
    destination, index = _cstring(data, index, 21)
    esm_class = data[index]
    index += 3  # esm_class, protocol_id, priority_flag
    _, index = _cstring(data, index, 17)  # schedule_delivery_time
    _, index = _cstring(data, index, 17)  # validity_period
    registered_delivery, data_coding = data[index], data[index + 2]
    length = data[index + 4]
    index += 5
    payload = data[index:index + length]
    if len(payload) != length:
        raise ValueError("short_message runs past the PDU")
    tlvs = _tlvs(data, index + length)
    if not payload and MESSAGE_PAYLOAD in tlvs:
        payload = tlvs[MESSAGE_PAYLOAD]
    segment = None
    if esm_class & ESM_UDHI:
        segment, payload = _udh(payload)
    elif SAR_MSG_REF_NUM in tlvs:
        segment = (int.from_bytes(tlvs[SAR_MSG_REF_NUM], "big"),
                   int.from_bytes(tlvs[SAR_SEGMENT_SEQNUM], "big"),
                   int.from_bytes(tlvs[SAR_TOTAL_SEGMENTS], "big"))
    return ShortMessage(source, destination, esm_class, registered_delivery, data_coding,
                        _text(payload, data_coding), segment, tlvs)


def _tlvs(data: bytes, index: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while index < len(data):
        tag, length = struct.unpack_from("!HH", data, index)
        value = data[index + 4:index + 4 + length]
        if len(value) != length:
            raise ValueError("TLV runs past the PDU")
        found[tag] = value
        index += 4 + length
    return found


def _udh(payload: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    header_length = payload[0]
    header, rest = payload[1:1 + header_length], payload[1 + header_length:]
    position = 0
    while position + 1 < len(header):
        element, size = header[position], header[position + 1]
        value = header[position + 2:position + 2 + size]
        if element == 0x00 and size == 3:
            return (value[0], value[2], value[1]), rest
        if element == 0x08 and size == 4:
            return (int.from_bytes(value[:2], "big"), value[3], value[2]), rest
        position += 2 + size
    return None, rest


def _text(payload: bytes, data_coding: int) -> str:
    if data_coding == 8:
        return payload.decode("utf-16-be")
    if data_coding == 0:
        return gsm_decode(payload)
    if data_coding == 3:
        return payload.decode("latin-1")
    if data_coding == 1:
        return payload.decode("ascii")
    raise ValueError(f"data_coding {data_coding} is not text")
