"""Keyed hashing of every secret the store keeps (PINs, message identities).

One key ([security] hash_key) for all of them; each use has its own label so that a
digest of one kind can never stand for another.
"""

from __future__ import annotations

import hmac

from smsgw.core.pins import is_pin

DIGEST_HEX_CHARS = 32


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
