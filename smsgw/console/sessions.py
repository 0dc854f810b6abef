"""Console sessions: server-side, in the store, behind a random token in a cookie.

The cookie holds only the token (HttpOnly, SameSite=Strict, Secure behind TLS); the store
keeps its digest, so a copy of the store opens no session. A session ends after 30
minutes unused (the key's TTL, renewed on use) and 12 hours after sign-in whatever
happens; removing a person or changing their role takes effect on their next request.
Each session has its own CSRF token, which every form that changes something carries.

Key: `console:session:{<token digest>}` (one per session).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

from smsgw.console.people import People, Person
from smsgw.store import Store

COOKIE = "smsgw_console"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True)
class Session:
    token: str
    person: Person
    csrf: str

    def csrf_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.csrf.encode())


def session_key(token: str) -> str:
    return f"console:session:{{{hashlib.sha256(token.encode('utf-8', 'replace')).hexdigest()}}}"


class Sessions:
    def __init__(self, store: Store, people: People) -> None:
        self._store = store
        self._people = people

    async def open(self, person: Person) -> Session:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        fields = {"user": person.name, "csrf": csrf, "created": str(time.time())}
        key = session_key(token)
        async with self._store.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=cast(Any, fields))
            pipe.expire(key, IDLE_SECONDS)
            await self._store.plain(pipe.execute())
        return Session(token, person, csrf)

    async def find(self, token: str) -> Session | None:
        """The live session of this token (renewing its idle time), or None."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        key = session_key(token)
        fields = await self._store.plain(self._store.redis.hgetall(key))
        if not fields:
            return None
        if time.time() - float(fields.get("created") or 0) > ABSOLUTE_SECONDS:
            await self.close(token)
            return None
        person = await self._people.get(fields.get("user", ""))
        if person is None:  # removed since
            await self.close(token)
            return None
        await self._store.plain(self._store.redis.expire(key, IDLE_SECONDS))
        return Session(token, person, fields.get("csrf", ""))

    async def close(self, token: str) -> None:
        await self._store.plain(self._store.redis.delete(session_key(token)))
