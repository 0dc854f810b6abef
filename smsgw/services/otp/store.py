"""The card OTP's store calls: its scripts (scripts/*.lua), their keys and arguments, the
request records, and the mobile -> cards index.

Each script's keys and arguments are a NamedTuple: their names are what the Lua reads,
their order is the order they are sent in (store/script.py). A card's keys carry its
digest's hash tag; a decoy's are the card's own (`decoy`), so that a request that sends
no SMS does the same work on the same slot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Required, TypedDict

from smsgw.store import Store
from smsgw.store.keys import card_history_key, card_key, mobile_cards_key, subscriber_key
from smsgw.store.script import Script, json_result

SCRIPTS = Path(__file__).with_name("scripts")
REQUEST_TTL = 3600  # an OTP request id's record (the scripts keep decoy state as long)


def card_requests_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:rq"


def card_decoy_key(card_hash: str) -> str:
    """The OTP and strike state of requests that send no SMS (service.py), so that they
    are checked by the same work as a real card's, without the card key existing."""
    return f"c:{{{card_hash}}}:decoy"


def card_decoy_history_key(card_hash: str) -> str:
    return f"c:{{{card_hash}}}:decoy:h"


def card_static_key(card_hash: str, day: str) -> str:
    return f"c:{{{card_hash}}}:st:{day}"


def mobile_requests_key(msisdn: str) -> str:
    return f"s:{{{msisdn}}}:otprq"


def request_key(request_id: str) -> str:
    return f"q:{{{request_id}}}"


class Outcome(TypedDict, total=False):
    status: Required[str]
    wait: int  # rate_limited: seconds
    mobile: str  # issued
    last4: str
    request: str  # a verdict of otp_check: the request it was about (webhook events)


class ReserveKeys(NamedTuple):
    requests: str  # the mobile's request times (a zset)
    subscriber: str  # the mobile's subscriber hash (its language)


class ReserveArgs(NamedTuple):
    now: float  # epoch seconds
    request_id: str
    max_per_hour: int


class OtpRequestKeys(NamedTuple):
    card: str
    requests: str  # the card's request times (a zset)
    history: str
    decoy: str
    decoy_history: str


class OtpRequestArgs(NamedTuple):
    now: float
    request_id: str
    otp: str  # the code's digest
    amount: int | str  # '' = bound to the card alone
    merchant: str
    ttl: int
    resend_gap: int
    max_per_hour: int  # per card
    deliverable: int  # 1/0: the card is ours and active (checked again inside)
    at: str  # the moment (ISO)
    requested_by: str  # the requesting mobile ('' = the payment system)


class OtpCheckKeys(NamedTuple):
    card: str
    history: str
    decoy: str
    decoy_history: str


class OtpCheckArgs(NamedTuple):
    now: float
    request_id: str  # '' = whichever is current
    otp: str  # the code's digest
    amount: int | str  # '' = no payment given
    merchant: str
    max_attempts: int
    at: str
    ttl: int  # of a decoy OTP begun now


class StaticKeys(NamedTuple):
    card: str
    day_total: str
    history: str
    decoy: str
    decoy_history: str


class StaticArgs(NamedTuple):
    amount: int
    password: str  # the static password's digest
    daily_limit: int
    day: str
    at: str
    max_wrong: int  # wrong in a row, before the static path closes for the day
    ours: int  # 1/0: the card is the bank's


class CardAdminKeys(NamedTuple):
    card: str
    history: str


class CardAdminArgs(NamedTuple):
    action: str  # add | set_mobile | disable | block
    at: str
    last4: str
    card_type: str
    mobile: str
    static_digest: str


def _wait_and_language(raw: list[Any]) -> tuple[int, str]:
    return int(raw[0]), str(raw[1])


RESERVE = Script(SCRIPTS / "otp_mobile_reserve.lua", ReserveKeys, ReserveArgs,
                 _wait_and_language)
OTP_REQUEST = Script(SCRIPTS / "otp_request.lua", OtpRequestKeys, OtpRequestArgs,
                     json_result(Outcome))
OTP_CHECK = Script(SCRIPTS / "otp_check.lua", OtpCheckKeys, OtpCheckArgs, json_result(Outcome))
STATIC_AUTHORIZE = Script(SCRIPTS / "static_authorize.lua", StaticKeys, StaticArgs,
                          json_result(Outcome))
CARD_ADMIN = Script(SCRIPTS / "card_admin.lua", CardAdminKeys, CardAdminArgs,
                    json_result(dict[str, Any]))


class CardStore:
    """The OTP service's calls on a Store (card_action: also care's, in admin.py)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def cards_of_mobile(self, msisdn: str) -> dict[str, str]:
        """card digest -> last four digits, for every card registered to this mobile.
        (The index may name a card that has moved since: see `active_cards`.)"""
        return dict(await self._store.plain(self._store.redis.hgetall(mobile_cards_key(msisdn))))

    async def active_cards(self, card_hashes: list[str], mobile: str) -> list[str]:
        """Those of the cards that are active and registered to this mobile now."""
        if not card_hashes:
            return []
        async with self._store.redis.pipeline(transaction=False) as pipe:
            for card_hash in card_hashes:
                pipe.hmget(card_key(card_hash), ["state", "mobile"])
            found = await self._store.plain(pipe.execute())
        return [card_hash for card_hash, (state, owner) in zip(card_hashes, found, strict=True)
                if state == "active" and owner == mobile]

    async def card_route(self, card_hash: str) -> tuple[str | None, str | None]:
        """The card's state and registered mobile (None, None for an unknown card)."""
        state, mobile = await self._store.plain(
            self._store.redis.hmget(card_key(card_hash), ["state", "mobile"]))
        return state, mobile

    async def reserve_mobile_request(self, mobile: str, args: ReserveArgs) -> tuple[int, str]:
        """Count a request against the mobile's hourly limit: (0, or seconds to wait;
        the mobile's reply language, '' if none chosen)."""
        return await self._store.run(
            RESERVE, ReserveKeys(mobile_requests_key(mobile), subscriber_key(mobile)), args)

    async def release_mobile_request(self, mobile: str, request_id: str) -> None:
        await self._store.plain(self._store.redis.zrem(mobile_requests_key(mobile), request_id))

    async def issue(self, card_hash: str, args: OtpRequestArgs) -> Outcome:
        return await self._store.run(OTP_REQUEST, OtpRequestKeys(
            card_key(card_hash), card_requests_key(card_hash), card_history_key(card_hash),
            card_decoy_key(card_hash), card_decoy_history_key(card_hash)), args)

    async def record_request(self, request_id: str, card_hash: str) -> None:
        """Which card a request id is for (the same record, sent an SMS or not)."""
        key = request_key(request_id)
        async with self._store.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, "card", card_hash)
            pipe.expire(key, REQUEST_TTL)
            await self._store.plain(pipe.execute())

    async def request_card(self, request_id: str) -> str | None:
        found = await self._store.plain(self._store.redis.hget(request_key(request_id), "card"))
        return None if found is None else str(found)

    async def check(self, card_hash: str, args: OtpCheckArgs) -> Outcome:
        return await self._store.run(OTP_CHECK, OtpCheckKeys(
            card_key(card_hash), card_history_key(card_hash), card_decoy_key(card_hash),
            card_decoy_history_key(card_hash)), args)

    async def authorize_static(self, card_hash: str, args: StaticArgs) -> Outcome:
        return await self._store.run(STATIC_AUTHORIZE, StaticKeys(
            card_key(card_hash), card_static_key(card_hash, args.day),
            card_history_key(card_hash), card_decoy_key(card_hash),
            card_decoy_history_key(card_hash)), args)

    async def card_action(self, action: str, card_hash: str, at: str, last4: str = "",
                          card_type: str = "", mobile: str = "",
                          static_digest: str = "") -> dict[str, Any]:
        """One card action. The mobile -> cards index (another slot) is kept around it:
        an entry is added before the card names the mobile and removed after it stops,
        so the index is never missing a card; readers check the card's own mobile."""
        store = self._store
        if mobile:
            last4 = last4 or (await store.card(card_hash)).get("last4", "")
            if last4:
                await store.plain(store.redis.hset(mobile_cards_key(mobile), card_hash, last4))
        outcome = await store.run(
            CARD_ADMIN, CardAdminKeys(card_key(card_hash), card_history_key(card_hash)),
            CardAdminArgs(action, at, last4, card_type, mobile, static_digest))
        if outcome["status"] == "ok":
            stale = outcome.get("old_mobile") or ""
        else:  # "exists": the entry added above is wrong unless the card has that mobile
            stale = mobile if outcome.get("mobile") != mobile else ""
        if stale and stale != mobile:
            await store.plain(store.redis.hdel(mobile_cards_key(stale), card_hash))
        return outcome
