"""PDU bodies built with aiosmpplib's classes (bind, submit_sm, deliver_sm)."""

from __future__ import annotations

import struct

from aiosmpplib.protocol import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    EnquireLink,
    SubmitSm,
    Unbind,
)
from aiosmpplib.state import NPI, TON, OptionalParam, PhoneNumber

from smsgw.transport.smpp.sms_text import Part

BIND_CLASSES = {"transceiver": BindTransceiver, "receiver": BindReceiver,
                "transmitter": BindTransmitter}


def address(number: str) -> PhoneNumber:
    """Short codes as unknown TON; canonical MSISDNs (98...) as international ISDN."""
    if len(number) >= 11 and number.isdigit():
        return PhoneNumber(number, TON.INTERNATIONAL, NPI.ISDN)
    return PhoneNumber(number[:20], TON.UNKNOWN, NPI.UNKNOWN)


def bind_pdu(kind: str, sequence: int, system_id: str, password: str, system_type: str) -> bytes:
    bind = BIND_CLASSES[kind](sequence_num=sequence, system_id=system_id[:15],
                              password=password[:8], system_type=system_type[:12])
    return bytes(bind.pdu())


def enquire_link_pdu(sequence: int) -> bytes:
    return bytes(EnquireLink(sequence_num=sequence).pdu())


def unbind_pdu(sequence: int) -> bytes:
    return bytes(Unbind(sequence_num=sequence).pdu())


def submit_sm_pdu(sequence: int, source: str, destination: str, part: Part,
                  registered_delivery: int) -> bytes:
    message = SubmitSm(
        sequence_num=sequence, short_message="-", source=address(source),
        destination=address(destination), esm_class=part.esm_class,
        encoding=part.encoding, registered_delivery=registered_delivery,
        auto_message_payload=False,
    )
    message.set_encoded_message(part.payload)
    return bytes(message.pdu())


def deliver_sm_pdu(sequence: int, source: str, destination: str, part: Part,
                   esm_class_extra: int = 0,
                   optional_params: list[OptionalParam] | None = None) -> bytes:
    if not optional_params:  # the fake SMSC's hot path: the same bytes, built directly
        return _fast_short_message(_DELIVER_SM, sequence, source, destination, part,
                                   part.esm_class | esm_class_extra, 0)
    return aiosmpplib_deliver_sm_pdu(sequence, source, destination, part, esm_class_extra,
                                     optional_params)


def aiosmpplib_deliver_sm_pdu(sequence: int, source: str, destination: str, part: Part,
                              esm_class_extra: int = 0,
                              optional_params: list[OptionalParam] | None = None) -> bytes:
    message = DeliverSm(
        sequence_num=sequence, short_message="-", source=address(source),
        destination=address(destination), esm_class=part.esm_class | esm_class_extra,
        encoding=part.encoding, registered_delivery=0, auto_message_payload=False,
        optional_params=optional_params or [],
    )
    message.set_encoded_message(part.payload)
    return bytes(message.pdu())


_DATA_CODING = {"gsm0338": 0, "ucs2": 8, "latin_1": 3, "ascii": 1}
_SUBMIT_SM = 0x00000004
_DELIVER_SM = 0x00000005


def _address_bytes(number: str) -> bytes:
    ton, npi = (1, 1) if len(number) >= 11 and number.isdigit() else (0, 0)
    return bytes((ton, npi)) + number[:20].encode("ascii") + b"\x00"


def fast_submit_sm_pdu(sequence: int, source: str, destination: str, part: Part,
                       registered_delivery: int) -> bytes:
    """The same bytes as `submit_sm_pdu`, without building aiosmpplib's dataclass (which
    validated every field on each reply: 8 % of the gateway's time). Tests compare the
    two byte for byte."""
    return _fast_short_message(_SUBMIT_SM, sequence, source, destination, part,
                               part.esm_class, registered_delivery)


def _fast_short_message(command_id: int, sequence: int, source: str, destination: str,
                        part: Part, esm_class: int, registered_delivery: int) -> bytes:
    """submit_sm and deliver_sm share one body layout (SMPP 3.4, 4.4.1 and 4.6.1)."""
    payload = part.payload
    body = b"".join((
        b"\x00",  # service_type
        _address_bytes(source), _address_bytes(destination),
        bytes((esm_class, 0, 0)),  # esm_class, protocol_id, priority_flag
        b"\x00\x00",  # schedule_delivery_time, validity_period
        bytes((registered_delivery, 0, _DATA_CODING[part.encoding], 0, len(payload))),
        payload,
    ))
    return struct.pack("!IIII", 16 + len(body), command_id, 0, sequence) + body
