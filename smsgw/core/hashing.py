"""Keyed hashing of every secret the store keeps (PINs, message identities).

One key ([security] hash_key) for all of them; each use has its own label so that a
digest of one kind can never stand for another.
"""

from __future__ import annotations

import hmac

from smsgw.grammar import PIN_TOKEN_PREFIX, is_pin_token

DIGEST_HEX_CHARS = 32


class Hasher:
    def __init__(self, key: str) -> None:
        self._key = key.encode("utf-8")

    def digest(self, label: str, *parts: str) -> str:
        message = "\x1f".join((label, *parts)).encode("utf-8")
        return hmac.digest(self._key, message, "sha256").hex()[:DIGEST_HEX_CHARS]

    def pin_digest(self, msisdn: str, pin: str) -> str:
        """The stored form of a PIN; a digest token from a message log is taken as is."""
        if is_pin_token(pin):
            return pin[len(PIN_TOKEN_PREFIX) :]
        return self.digest("pin", msisdn, pin)

    def pin_token(self, msisdn: str, pin: str) -> str:
        """How a message log writes a PIN: the stored digest, marked so it is not digits."""
        return PIN_TOKEN_PREFIX + self.pin_digest(msisdn, pin)

    def message_identity(self, *parts: str) -> str:
        return self.digest("msg", *parts)
    def card_digest(self, card_number: str) -> str:
        return self.digest("card", card_number)

    def static_digest(self, card_hash: str, password: str) -> str:
        return self.digest("static", card_hash, password)

    def otp_digest(self, card_hash: str, code: str) -> str:
        return self.digest("otp", card_hash, code)
