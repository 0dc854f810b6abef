"""The console's people: names, roles, password hashes, and the sign-in lockout.

Passwords are kept only as scrypt hashes with a per-user random salt (the parameters are
stored beside each hash, so they can be raised later without breaking old ones).
Sign-in answers the same, and takes about as long, whether the name exists or not: an
unknown name is checked against a dummy hash, and counts towards the lockout like any
other. Five failures in a row lock the name (known or not) for 15 minutes.

Keys (one per user or name, each its own hash tag): `console:user:{NAME}`,
`console:users:{index}` (the set of names, for listing), `console:fail:{<digest>}`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, cast

from smsgw.store import Store
from smsgw.store.script import Script

ROLES = ("viewer", "care", "supervisor")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
USERS_INDEX_KEY = "console:users:{index}"
# scrypt cost: 2**15 x 8 x 128 bytes = 32 MiB and ~0.1 s a check. Tests lower it.
SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1


class FailureKeys(NamedTuple):
    counter: str  # the name's failed sign-ins in a row


class FailureArgs(NamedTuple):
    lock_seconds: int  # how long the count, and a lock, last
    max_failures: int  # in a row, before the name is locked


COUNT_FAILURE = Script(Path(__file__).with_name("scripts") / "console_fail.lua", FailureKeys,
                       FailureArgs, int)


class BadUser(ValueError):
    """A user name, role or password that `user add` refuses (the message says why)."""


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    created: str


class SignIn(Enum):
    OK = "ok"
    FAILED = "failed"  # wrong name or password: one answer for both
    LOCKED = "locked"


def user_key(name: str) -> str:
    return f"console:user:{{{name}}}"


def failures_key(name: str) -> str:
    # a digest: whatever a stranger types as a name stays out of the key space
    return f"console:fail:{{{hashlib.sha256(name.encode('utf-8', 'replace')).hexdigest()}}}"


def normalise_name(name: str) -> str:
    return name.strip().lower()


def check_new_user(name: str, role: str, password: str) -> str:
    """The normalised name, or BadUser with the reason."""
    name = normalise_name(name)
    if not NAME_PATTERN.fullmatch(name):
        raise BadUser("a user name is 1 to 32 of a-z, 0-9, '.', '_', '-' (starting with a "
                      "letter or digit)")
    if role not in ROLES:
        raise BadUser(f"the role is one of {', '.join(ROLES)}")
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise BadUser(f"a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    return name


# -- password hashes ---------------------------------------------------------------------

def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_LOG2_N), str(SCRYPT_R), str(SCRYPT_P),
                     _b64(salt), _b64(digest)])


def password_matches(password: str, encoded: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        given = _scrypt(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(given, base64.b64decode(digest))


@cache
def _dummy_hash(log2_n: int) -> str:
    """Checked for an unknown name, so that it costs what a known name costs."""
    return hash_password(secrets.token_urlsafe(16))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    if not (1 <= log2_n <= 20 and 1 <= r <= 16 and 1 <= p <= 4):
        raise ValueError("scrypt parameters out of range")
    return hashlib.scrypt(password.encode("utf-8", "replace"), salt=salt, n=2**log2_n, r=r,
                          p=p, maxmem=256 * 1024 * 1024, dklen=32)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# -- the store ---------------------------------------------------------------------------

class People:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._redis = store.redis

    async def add(self, name: str, role: str, password: str, at: str) -> bool:
        """Add a person, or replace the role and password of one: True if new."""
        name = check_new_user(name, role, password)
        fields = {"role": role, "password": hash_password(password), "created": at}
        existed = await self._store.plain(self._redis.exists(user_key(name)))
        await self._store.plain(self._redis.hset(user_key(name), mapping=cast(Any, fields)))
        await self._store.plain(self._redis.sadd(USERS_INDEX_KEY, name))
        return not existed

    async def remove(self, name: str) -> bool:
        name = normalise_name(name)
        removed = await self._store.plain(self._redis.delete(user_key(name)))
        await self._store.plain(self._redis.srem(USERS_INDEX_KEY, name))
        return bool(removed)

    async def get(self, name: str) -> Person | None:
        name = normalise_name(name)
        if not NAME_PATTERN.fullmatch(name):
            return None
        fields = await self._store.plain(self._redis.hgetall(user_key(name)))
        if not fields or fields.get("role") not in ROLES:
            return None
        return Person(name, fields["role"], fields.get("created", ""))

    async def all(self) -> list[Person]:
        names = sorted(await self._store.plain(self._redis.smembers(USERS_INDEX_KEY)))
        found = [await self.get(name) for name in names]
        return [person for person in found if person is not None]

    async def sign_in(self, name: str, password: str) -> tuple[SignIn, Person | None]:
        name = normalise_name(name)[:MAX_PASSWORD_CHARS]
        counter = failures_key(name)
        # counted first, as if it failed (atomically: concurrent guesses get no more tries)
        attempts = await self._store.run(COUNT_FAILURE, FailureKeys(counter),
                                         FailureArgs(LOCK_SECONDS, MAX_FAILURES))
        if attempts < 0:
            return SignIn.LOCKED, None
        fields: dict[str, str] = {}
        if NAME_PATTERN.fullmatch(name):
            fields = await self._store.plain(self._redis.hgetall(user_key(name)))
        encoded = fields.get("password") or _dummy_hash(SCRYPT_LOG2_N)
        # in a thread (hashlib releases the GIL): on the event loop, a stranger's sign-ins
        # (0.1 s each) would stall every answer of the process, the payment API's too
        matched = await asyncio.to_thread(password_matches, password[:MAX_PASSWORD_CHARS],
                                          encoded)
        if matched and fields.get("role") in ROLES:
            await self._store.plain(self._redis.delete(counter))
            return SignIn.OK, Person(name, fields["role"], fields.get("created", ""))
        return (SignIn.LOCKED if attempts >= MAX_FAILURES else SignIn.FAILED), None
