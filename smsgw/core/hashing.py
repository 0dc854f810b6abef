"""Keyed hashing of every secret the store keeps (PINs, message identities).

One key ([security] hash_key) for all of them; each use has its own label so that a
digest of one kind can never stand for another.
"""

from __future__ import annotations

import hmac
import os

from smsgw.core.pins import is_pin

DIGEST_HEX_CHARS = 32
SEAL_NONCE_BYTES = 16
SEAL_TAG_BYTES = 16
KEYSTREAM_BLOCK_BYTES = 32  # one HMAC-SHA256
MAX_SEALED_BYTES = 4096  # an OTP (10 digits at most), a part of a concatenated SMS


class Hasher:
    def __init__(self, key: str) -> None:
        self._key = key.encode("utf-8")

    def digest(self, label: str, *parts: str) -> str:
        message = "\x1f".join((label, *parts)).encode("utf-8")
        return hmac.digest(self._key, message, "sha256").hex()[:DIGEST_HEX_CHARS]

    def pin_digest(self, msisdn: str, pin: str) -> str:
        """The stored form of a PIN: 5-8 ASCII digits, nothing else. A message log's
        digest token is no PIN (smsgw.core.pins.LoggedPin carries one, from a log only)."""
        if not is_pin(pin):
            raise ValueError("a PIN is 5 to 8 ASCII digits")
        return self.digest("pin", msisdn, pin)

    def message_identity(self, *parts: str) -> str:
        return self.digest("msg", *parts)

    def card_digest(self, card_number: str) -> str:
        return self.digest("card", card_number)

    def static_digest(self, card_hash: str, password: str) -> str:
        return self.digest("static", card_hash, password)

    def otp_digest(self, card_hash: str, code: str) -> str:
        return self.digest("otp", card_hash, code)

    def seal(self, label: str, value: str) -> str:
        """A secret kept where it must be read back (an OTP in the outbox, a part of a
        concatenated SMS waiting for the rest), hidden from whoever lacks the key: XOR
        with a keystream that HMAC makes of a fresh nonce, block by block (HMAC as a PRF
        in counter mode), and a tag over nonce and ciphertext, so a changed value is
        refused (hex)."""
        data = value.encode("utf-8")
        if len(data) > MAX_SEALED_BYTES:
            raise ValueError("only short secrets are sealed")
        nonce = os.urandom(SEAL_NONCE_BYTES)
        keystream = self._keystream(label, nonce, len(data))
        sealed = bytes(a ^ b for a, b in zip(data, keystream, strict=False))
        return (nonce + sealed + self._seal_tag(label, nonce, sealed)).hex()

    def unseal(self, label: str, sealed_hex: str) -> str:
        """The value `seal` hid; ValueError for anything it did not make with this key."""
        raw = bytes.fromhex(sealed_hex)
        nonce, sealed = raw[:SEAL_NONCE_BYTES], raw[SEAL_NONCE_BYTES:-SEAL_TAG_BYTES]
        if not hmac.compare_digest(raw[-SEAL_TAG_BYTES:], self._seal_tag(label, nonce, sealed)):
            raise ValueError("sealed value damaged, or sealed with another key")
        keystream = self._keystream(label, nonce, len(sealed))
        return bytes(a ^ b for a, b in zip(sealed, keystream, strict=False)).decode("utf-8")

    def _keystream(self, label: str, nonce: bytes, length: int) -> bytes:
        """`length` bytes: block 0 as the first version made it (an OTP sealed by it still
        opens), then block n of HMAC(key, the same input + n)."""
        start = b"seal\x1f" + label.encode() + b"\x1f" + nonce
        blocks = [hmac.digest(self._key, start, "sha256")]
        for number in range(1, -(-length // KEYSTREAM_BLOCK_BYTES)):
            blocks.append(hmac.digest(self._key, start + number.to_bytes(4, "big"), "sha256"))
        return b"".join(blocks)

    def _seal_tag(self, label: str, nonce: bytes, sealed: bytes) -> bytes:
        message = b"seal-tag\x1f" + label.encode() + b"\x1f" + nonce + sealed
        return hmac.digest(self._key, message, "sha256")[:SEAL_TAG_BYTES]
