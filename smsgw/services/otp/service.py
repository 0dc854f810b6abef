"""Bank card one-time password ("dynamic second password"): dynamic-password.md.

Card numbers, static passwords and OTPs reach the store only as keyed digests; a card is
shown by its last four digits. Every decision is one atomic script call. Answers to a
requester never reveal whether a card exists, is the bank's, or is enabled.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from smsgw.config import OtpSettings
from smsgw.core import replies
from smsgw.core.clock import period_of
from smsgw.core.hashing import Hasher
from smsgw.core.masking import Part, Shown
from smsgw.core.records import record
from smsgw.core.text import normalise
from smsgw.messages import Inbound, Outbound
from smsgw.observability import metrics
from smsgw.services.otp.cards import is_our_card
from smsgw.services.otp.events import OtpEvents
from smsgw.services.otp.parse import parse_otp_request
from smsgw.services.otp.store import (
    CardStore,
    OtpCheckArgs,
    OtpRequestArgs,
    ReserveArgs,
    StaticArgs,
)
from smsgw.store import Store

MERCHANT_SHOWN_CHARS = 30
VERIFY_REASONS = ("wrong_code", "expired", "used", "too_many_attempts")

TEMPLATES = replies.Templates(Path(__file__).parent / "templates")


@record
class OtpRequestAnswer:
    accepted: bool  # False: rate-limited
    request_id: str
    retry_after: int
    replies: list[Outbound]
    # the SMS a card that gets none would have got: not sent, but made durable alike on a
    # decoy row (Outbox.hold_decoys), so that the answer takes as long as a real one
    decoys: list[Outbound]


def printable(text: str, limit: int = MERCHANT_SHOWN_CHARS) -> str:
    """A merchant name safe to put in an SMS: no control characters, bounded length."""
    cleaned = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return " ".join(cleaned.split())[:limit]


class OtpService:
    def __init__(self, settings: OtpSettings, timezone: str, store: Store, hasher: Hasher,
                 default_language: str, events: OtpEvents | None = None) -> None:
        self.short_code = settings.short_code
        self.events = events or OtpEvents(store, enabled=False)  # webhooks
        self._cfg = settings
        self._tz = timezone
        self._store = store
        self._cards = CardStore(store)
        self._hasher = hasher
        self._default_language = default_language

    @property
    def store(self) -> Store:
        return self._store

    @property
    def hasher(self) -> Hasher:
        return self._hasher

    # -- SMS requests (short code 7000) -------------------------------------------------

    async def handle(self, message: Inbound) -> list[Outbound]:
        language = replies.pick_language(
            await self._store.subscriber_language(message.sender), self._default_language)
        request = parse_otp_request(message.text)
        if request is None:
            return [self._reply(message.sender, language, "usage")]
        cards = await self._cards.cards_of_mobile(message.sender)
        if request.last_four is not None:
            cards = {h: l4 for h, l4 in cards.items() if l4 == request.last_four}
        active = await self._cards.active_cards(list(cards), message.sender)
        if request.last_four is None and len(active) > 1:
            shown = "، ".join(sorted(replies.show_digits(cards[h], language) for h in active))
            return [self._reply(message.sender, language, "which_card", cards=shown)]
        card_hash = active[0] if active else None
        if card_hash is None:
            metrics.OTP_EVENTS.labels(event="no_card").inc()
            return [self._no_card(message.sender, language, request.last_four)]
        answer = await self._issue(card_hash, True, message.sender, None, "", message.at,
                                   requested_by=message.sender)
        if not answer.accepted:
            return [self._reply(message.sender, language, "rate_limited",
                                wait=replies.show_digits(str(answer.retry_after), language))]
        return answer.replies or [self._no_card(message.sender, language, request.last_four)]

    def log_view(self, message: Inbound) -> list[Part]:
        """A valid request may be shown (its only digits: a card's last four, normalised);
        any other text has its digits hidden (masking.py): `OTP 6279611234567894`."""
        text = normalise(message.text)
        return [Shown(text) if parse_otp_request(text) is not None else text]

    def _no_card(self, to: str, language: str, last4: str | None) -> Outbound:
        shown = replies.show_digits(last4, language) if last4 else ""
        return self._reply(to, language, "no_card_ending" if last4 else "no_card", last4=shown)

    def _reply(self, to: str, language: str, name: str, **values: Any) -> Outbound:
        return Outbound(to, self.short_code, TEMPLATES.render(language, "otp", name, **values),
                        f"otp.{name}")

    # -- the payment system -------------------------------------------------------------
    #
    # Nothing here may tell a requester whether a card exists, is the bank's, or is
    # enabled: not the answer, not the metrics, and not the work (which shows in the
    # timing). A request that will send no SMS does the same store calls, hashing and SMS
    # rendering as one that does, on decoy keys of its card's (scripts/otp_*.lua),
    # and only the SMS itself is not handed on.

    async def request_for_payment(self, card: str, amount: int, merchant: str,
                                  at: datetime) -> OtpRequestAnswer:
        card_hash = self._hasher.card_digest(card)
        state, mobile = await self._cards.card_route(card_hash)
        deliverable = is_our_card(card, self._cfg.bins) and state == "active"
        return await self._issue(card_hash, deliverable, mobile if deliverable else None,
                                 amount, merchant, at)

    async def _issue(self, card_hash: str, deliverable: bool, mobile: str | None,
                     amount: int | None, merchant: str, at: datetime,
                     requested_by: str = "") -> OtpRequestAnswer:
        """One request: `mobile` None for a card that gets no SMS (its requests count on a
        decoy mobile of its own, so an unknown card is limited like a card alone on its
        mobile, and never uses up a real mobile's allowance). The script checks again
        whether the card may get an SMS, atomically."""
        request_id = secrets.token_urlsafe(16)
        code = f"{secrets.randbelow(10 ** self._cfg.length):0{self._cfg.length}d}"
        cfg = self._cfg
        decoy_mobile = self._hasher.digest("otp-decoy-mobile", card_hash)
        counted_on = mobile or decoy_mobile
        wait, language = await self._cards.reserve_mobile_request(counted_on, ReserveArgs(
            now=at.timestamp(), request_id=request_id,
            max_per_hour=cfg.max_per_mobile_per_hour))
        if wait:
            return self._refused(wait)
        outcome = await self._cards.issue(card_hash, OtpRequestArgs(
            now=at.timestamp(), request_id=request_id,
            otp=self._hasher.otp_digest(card_hash, code),
            amount="" if amount is None else amount, merchant=merchant, ttl=cfg.ttl_seconds,
            resend_gap=cfg.resend_after_seconds, max_per_hour=cfg.max_per_card_per_hour,
            deliverable=int(deliverable), at=at.isoformat(), requested_by=requested_by))
        if outcome["status"] == "rate_limited":
            await self._cards.release_mobile_request(counted_on, request_id)
            return self._refused(int(outcome["wait"]))
        await self._cards.record_request(request_id, card_hash)
        issued = outcome["status"] == "issued"
        if not requested_by:  # the payment system's: webhook events, if it sent an SMS
            await self.events.issued(request_id, outcome["last4"] if issued else "",
                                     at.timestamp() + cfg.ttl_seconds, issued)
        sms = self._otp_sms(outcome["mobile"] if issued else counted_on, code,
                            outcome["last4"] if issued else "0000", amount, merchant,
                            replies.pick_language(language, self._default_language), request_id)
        metrics.OTP_EVENTS.labels(event="accepted").inc()  # issued or silent: one outcome
        return OtpRequestAnswer(True, request_id, 0, [sms] if issued else [],
                                [] if issued else [sms])

    @staticmethod
    def _refused(wait: int) -> OtpRequestAnswer:
        metrics.OTP_EVENTS.labels(event="rate_limited").inc()
        return OtpRequestAnswer(False, "", wait, [], [])

    def _otp_sms(self, mobile: str, code: str, last4: str, amount: int | None, merchant: str,
                 language: str, request_id: str) -> Outbound:
        values = {"otp": code, "last4": replies.show_digits(last4, language),
                  "ttl": replies.show_digits(str(self._cfg.ttl_seconds), language)}
        if amount is None:
            name = "sms_card"
        else:
            name = "sms_payment"
            values.update(amount=replies.show_money(amount, language),
                          merchant=printable(merchant))
        text = TEMPLATES.render(language, "otp", name, **values)
        return Outbound(mobile, self.short_code, text, f"otp.{name}", receipt=True,
                        secret=code, receipt_about=f"otp request {request_id}")

    async def verify(self, request_id: str, code: str, at: datetime) -> tuple[bool, str]:
        """A made-up request id is checked on a decoy card derived from it, so it counts,
        voids and expires like the id of a request that sent no SMS."""
        decoy_card = self._hasher.digest("otp-unknown-request", request_id)
        card_hash = await self._cards.request_card(request_id) or decoy_card
        status = await self._check(card_hash, request_id, code, None, "", at, "verify")
        return self._verdict(status)

    def _verdict(self, status: str) -> tuple[bool, str]:
        metrics.OTP_EVENTS.labels(event="verified" if status == "ok" else status).inc()
        if status == "ok":
            return True, ""
        return False, status if status in VERIFY_REASONS else "wrong_code"

    async def _check(self, card_hash: str, request_id: str, code: str, amount: int | None,
                     merchant: str, at: datetime, by: str) -> str:
        outcome = await self._cards.check(card_hash, OtpCheckArgs(
            now=at.timestamp(), request_id=request_id,
            otp=self._hasher.otp_digest(card_hash, code),
            amount="" if amount is None else amount, merchant=merchant,
            max_attempts=self._cfg.max_attempts, at=at.isoformat(),
            ttl=self._cfg.ttl_seconds))
        await self.events.checked(str(outcome.get("request", "")), outcome["status"], by)
        return str(outcome["status"])

    async def authorize(self, card: str, amount: int, merchant: str, otp: str | None,
                        static_password: str | None, at: datetime) -> tuple[bool, str]:
        card_hash = self._hasher.card_digest(card)
        if otp is not None:
            status = await self._check(card_hash, "", otp, amount, merchant, at, "authorize")
            metrics.OTP_EVENTS.labels(event="verified" if status == "ok" else status).inc()
            return (True, "") if status == "ok" else (False, "otp_invalid")
        assert static_password is not None
        day = period_of(at, self._tz, "gregorian").day
        outcome = await self._cards.authorize_static(card_hash, StaticArgs(
            amount=amount, password=self._hasher.static_digest(card_hash, static_password),
            daily_limit=self._cfg.static_daily_limit, day=day, at=at.isoformat(),
            max_wrong=self._cfg.max_attempts, ours=int(is_our_card(card, self._cfg.bins))))
        status = str(outcome["status"])
        return (True, "") if status == "approved" else (False, status)
