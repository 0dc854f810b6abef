"""SMPP 3.4 framing and decoding, on aiosmpplib's PDU classes.

Headers are parsed here with `struct`, not by aiosmpplib: its enums raise on a vendor
status (0x400 and up) or an unknown command id, which would drop the connection. Bodies
are decoded by aiosmpplib's `from_pdu`; any failure becomes a `PduError` that the caller
answers with generic_nack (or an error response) while the session keeps serving.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from aiosmpplib.protocol import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from aiosmpplib.state import PduHeader, SmppCommand, SmppCommandStatus

from smsgw.core.records import record

HEADER: Final = struct.Struct("!IIII")
HEADER_LENGTH: Final = 16
MAX_PDU_LENGTH: Final = 64 * 1024
RESPONSE_BIT: Final = 0x80000000

# Command ids (SMPP 3.4, 5.1.2.1)
BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER = 0x00000001, 0x00000002, 0x00000009
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x00000004, 0x00000005, 0x00000006, 0x00000015
GENERIC_NACK = 0x80000000

# Command status (5.1.3)
ESME_ROK: Final = 0x00000000
ESME_RINVMSGLEN: Final = 0x00000001
ESME_RINVCMDLEN: Final = 0x00000002
ESME_RINVCMDID: Final = 0x00000003
ESME_RINVBNDSTS: Final = 0x00000004
ESME_RALYBND: Final = 0x00000005
ESME_RSYSERR: Final = 0x00000008
ESME_RINVSRCADR: Final = 0x0000000A
ESME_RINVDSTADR: Final = 0x0000000B
ESME_RBINDFAIL: Final = 0x0000000D
ESME_RINVPASWD: Final = 0x0000000E
ESME_RINVSYSID: Final = 0x0000000F
ESME_RMSGQFUL: Final = 0x00000014
ESME_RTHROTTLED: Final = 0x00000058
ESME_RX_T_APPN: Final = 0x00000064  # temporary application error: deliver again later
ESME_RX_P_APPN: Final = 0x00000065  # permanent application error: do not deliver again
ESME_RINVOPTPARSTREAM: Final = 0x000000C0  # the TLVs do not parse
ESME_ROPTPARNOTALLWD: Final = 0x000000C1
ESME_RINVPARLEN: Final = 0x000000C2  # a known TLV of the wrong length
ESME_RMISSINGOPTPARAM: Final = 0x000000C3
ESME_RINVOPTPARAMVAL: Final = 0x000000C4

_CLASSES: dict[int, type[SmppMessage]] = {
    BIND_RECEIVER: BindReceiver,
    BIND_TRANSMITTER: BindTransmitter,
    BIND_TRANSCEIVER: BindTransceiver,
    BIND_RECEIVER | RESPONSE_BIT: BindReceiverResp,
    BIND_TRANSMITTER | RESPONSE_BIT: BindTransmitterResp,
    BIND_TRANSCEIVER | RESPONSE_BIT: BindTransceiverResp,
    SUBMIT_SM: SubmitSm,
    SUBMIT_SM | RESPONSE_BIT: SubmitSmResp,
    DELIVER_SM: DeliverSm,
    DELIVER_SM | RESPONSE_BIT: DeliverSmResp,
    UNBIND: Unbind,
    UNBIND | RESPONSE_BIT: UnbindResp,
    ENQUIRE_LINK: EnquireLink,
    ENQUIRE_LINK | RESPONSE_BIT: EnquireLinkResp,
    GENERIC_NACK: GenericNack,
}


class PduError(Exception):
    """A PDU that cannot be decoded. `status` is what to answer it with."""

    def __init__(self, message: str, status: int, sequence: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.sequence = sequence


class FramingError(Exception):
    """The byte stream itself is broken (impossible length): the link must be dropped."""


@record
class RawPdu:
    command_id: int
    status: int
    sequence: int
    data: bytes  # the whole PDU, header included

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)


class PduFramer:
    """Cuts a byte stream into PDUs, whatever the chunks it arrives in: one read of the
    socket yields every whole PDU in it (one await per chunk, not two per PDU)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished PDU held back."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> Iterator[RawPdu]:
        """The whole PDUs now available, in order; FramingError at an impossible length
        (after the whole PDUs before it)."""
        buffer = self._buffer
        buffer += chunk
        start, size = 0, len(buffer)
        try:
            while size - start >= HEADER_LENGTH:
                length, command_id, status, sequence = HEADER.unpack_from(buffer, start)
                if not HEADER_LENGTH <= length <= MAX_PDU_LENGTH:
                    raise FramingError(f"PDU length {length} out of range")
                if size - start < length:
                    break
                yield RawPdu(command_id, status, sequence, bytes(buffer[start:start + length]))
                start += length
        finally:
            del buffer[:start]


def read_pdu_bytes(data: bytes) -> RawPdu:
    """One whole PDU from bytes (tests and tools)."""
    length, command_id, status, sequence = HEADER.unpack_from(data)
    return RawPdu(command_id, status, sequence, data[:length])


def decode(raw: RawPdu, default_encoding: str = "gsm0338") -> SmppMessage:
    cls = _CLASSES.get(raw.command_id)
    if cls is None:
        raise PduError(f"unknown command id {raw.command_id:#010x}", ESME_RINVCMDID, raw.sequence)
    header = PduHeader(
        pdu_length=len(raw.data),
        smpp_command=SmppCommand(raw.command_id),
        command_status=_known_status(raw.status),
        sequence_num=raw.sequence,
    )
    try:
        return cls.from_pdu(raw.data, header, default_encoding=default_encoding)
    except Exception as exc:  # aiosmpplib raises many kinds on a broken body
        raise PduError(f"cannot decode {cls.__name__}: {exc!r}", ESME_RINVCMDLEN,
                       raw.sequence) from exc


def _known_status(status: int) -> SmppCommandStatus:
    try:
        return SmppCommandStatus(status)
    except ValueError:
        return SmppCommandStatus.ESME_RUNKNOWNERR


def response_pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    """A response PDU built directly, so any status (vendor codes included) can be sent."""
    return HEADER.pack(HEADER_LENGTH + len(body), command_id | RESPONSE_BIT, status,
                       sequence) + body


def generic_nack(status: int, sequence: int) -> bytes:
    return HEADER.pack(HEADER_LENGTH, GENERIC_NACK, status, sequence)


def message_id_body(message_id: str) -> bytes:
    return message_id.encode("ascii", "replace") + b"\x00"
