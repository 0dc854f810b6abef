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
MAX_SEALED_BYTES = 32  # one HMAC-SHA256 block of keystream: an OTP is at most 10 digits


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
        """A short secret (an OTP) kept where it must be read back (the outbox), hidden
        from whoever lacks the key: XOR with a keystream that HMAC makes of a fresh nonce,
        and a tag, so a changed value is refused (hex)."""
        data = value.encode("utf-8")
        if len(data) > MAX_SEALED_BYTES:
            raise ValueError("only short secrets are sealed")
        nonce = os.urandom(SEAL_NONCE_BYTES)
        sealed = bytes(a ^ b for a, b in zip(data, self._keystream(label, nonce), strict=False))
        return (nonce + sealed + self._seal_tag(label, nonce, sealed)).hex()

    def unseal(self, label: str, sealed_hex: str) -> str:
        """The value `seal` hid; ValueError for anything it did not make with this key."""
        raw = bytes.fromhex(sealed_hex)
        nonce, sealed = raw[:SEAL_NONCE_BYTES], raw[SEAL_NONCE_BYTES:-SEAL_TAG_BYTES]
        if not hmac.compare_digest(raw[-SEAL_TAG_BYTES:], self._seal_tag(label, nonce, sealed)):
            raise ValueError("sealed value damaged, or sealed with another key")
        return bytes(a ^ b for a, b in zip(sealed, self._keystream(label, nonce),
                                           strict=False)).decode("utf-8")

    def _keystream(self, label: str, nonce: bytes) -> bytes:
        return hmac.digest(self._key, b"seal\x1f" + label.encode() + b"\x1f" + nonce, "sha256")

    def _seal_tag(self, label: str, nonce: bytes, sealed: bytes) -> bytes:
        message = b"seal-tag\x1f" + label.encode() + b"\x1f" + nonce + sealed
        return hmac.digest(self._key, message, "sha256")[:SEAL_TAG_BYTES]
