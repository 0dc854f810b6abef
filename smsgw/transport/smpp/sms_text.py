"""Text on the wire: choose the alphabet, split long text into concatenated parts.

Persian goes as UCS2 (data_coding 8): 70 characters in one SMS, 67 per part with a UDH.
Text that fits the GSM 7-bit default alphabet goes as GSM (data_coding 0, sent unpacked,
one octet per septet as SMPP carries it): 160 septets in one SMS, 153 per part. Every
part is within the 140-octet air limit once the SMSC packs it.
"""

from __future__ import annotations

import itertools

from aiosmpplib.codec import GSM7BitCodec

from smsgw.core.records import record

UCS2_SINGLE_OCTETS = 140
UCS2_PART_OCTETS = 134  # 140 - 6-octet UDH
GSM_SINGLE_SEPTETS = 160
GSM_PART_SEPTETS = 153  # (140 - 6) * 8 / 7
ESM_UDHI = 0x40
GSM_ESCAPE = 0x1B

_gsm = GSM7BitCodec()
_reference = itertools.count(1)
# Octets that stand for the same character in ASCII and in the GSM default alphabet
# (letters, digits, space, most punctuation, LF, CR; not $ @ [ \\ ] ^ _ ` { | } ~):
# text made only of these skips aiosmpplib's character-by-character codec.
_SAME_IN_GSM = bytes([0x0A, 0x0D, 0x20, 0x21, 0x22, 0x23, *range(0x25, 0x40),
                      *range(0x41, 0x5B), *range(0x61, 0x7B)])


def gsm_encode(text: str) -> bytes | None:
    """GSM default alphabet octets (unpacked), or None when the text doesn't fit it."""
    if text.isascii():
        octets = text.encode("ascii")
        if not octets.translate(None, _SAME_IN_GSM):
            return octets
    if GSM7BitCodec.is_gsm_text(text):
        return bytes(_gsm.encode(text)[0])
    return None


def gsm_decode(octets: bytes) -> str:
    if not octets.translate(None, _SAME_IN_GSM):
        return octets.decode("ascii")
    return str(_gsm.decode(octets)[0])


@record
class Part:
    encoding: str  # "gsm0338" or "ucs2"
    payload: bytes  # UDH (if any) + encoded text
    esm_class: int


def encode_reply(text: str) -> list[Part]:
    encoded = gsm_encode(text)
    if encoded is not None:
        if len(encoded) <= GSM_SINGLE_SEPTETS:
            return [Part("gsm0338", encoded, 0)]
        return _with_udh("gsm0338", _split_gsm(encoded))
    encoded = text.encode("utf-16-be")
    if len(encoded) <= UCS2_SINGLE_OCTETS:
        return [Part("ucs2", encoded, 0)]
    return _with_udh("ucs2", _split_ucs2(encoded))


def _split_gsm(encoded: bytes) -> list[bytes]:
    chunks, start = [], 0
    while start < len(encoded):
        end = min(start + GSM_PART_SEPTETS, len(encoded))
        if end < len(encoded) and encoded[end - 1] == GSM_ESCAPE:
            end -= 1  # never split an escape sequence between parts
        chunks.append(encoded[start:end])
        start = end
    return chunks


def _split_ucs2(encoded: bytes) -> list[bytes]:
    chunks, start = [], 0
    while start < len(encoded):
        end = min(start + UCS2_PART_OCTETS, len(encoded))
        if end < len(encoded) and 0xD8 <= encoded[end - 2] <= 0xDB:
            end -= 2  # never split a surrogate pair between parts
        chunks.append(encoded[start:end])
        start = end
    return chunks


def _with_udh(encoding: str, chunks: list[bytes]) -> list[Part]:
    if len(chunks) > 255:
        raise ValueError("reply too long for concatenated SMS")
    reference = next(_reference) & 0xFF
    total = len(chunks)
    return [
        Part(encoding, bytes([5, 0, 3, reference, total, number]) + chunk, ESM_UDHI)
        for number, chunk in enumerate(chunks, start=1)
    ]
