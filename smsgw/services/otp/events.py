"""Webhook events of OTP requests (interfaces.md, "Webhooks"), recorded durably in the store
(store/webhooks.py) for the delivery worker (workers/webhooks.py) to POST.

One event per change of a request the payment system made (POST /v1/otp):
`otp.sent` (the SMSC accepted the SMS), `otp.delivered` / `otp.failed` (its delivery
receipt), `otp.verified`, `otp.voided` (too many wrong codes), `otp.expired`. The body is
`{"id", "type", "request_id", "at", "card_last4", "detail"}`: never the OTP, the card
number or the mobile (only the last four digits, which the SMS shows too).

Requests that sent no SMS (unknown, foreign, disabled or blocked cards) are registered
by the same call under a key no event reads, so they get no events, while the HTTP
caller sees the same answers and the same store round trips. A failure to record an event
is logged and never fails the request it describes.

otp.expired is found by a sweep (the delivery worker calls `expire_due` every pass, so
within a second or so of the expiry): a request neither verified nor voided by its OTP's
expiry time expires then, also when a newer request for the card replaced it earlier.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from smsgw.core.clock import now as clock_now
from smsgw.observability.logs import get_logger
from smsgw.store import Store, StoreUnavailable
from smsgw.store.webhooks import WebhookStore

log = get_logger("smsgw.services.otp.events")
RECEIPT_ABOUT = "otp request "  # an OTP SMS's receipt tag: this and its request id
DELIVERED_STATES = frozenset({"DELIVRD"})
FAILED_STATES = frozenset({"UNDELIV", "EXPIRED", "DELETED", "REJECTD", "UNKNOWN"})
SWEEP_BATCH = 200
T = TypeVar("T")


class OtpEvents:
    """Records events when `enabled` (an `[otp] webhook_url` is set); else does nothing."""

    def __init__(self, store: Store, enabled: bool,
                 clock: Callable[[], datetime] = clock_now) -> None:
        self._hooks = WebhookStore(store)
        self.enabled = enabled
        self._clock = clock

    async def issued(self, request_id: str, last4: str, expires_at: float, sent: bool) -> None:
        if self.enabled:
            await self._quietly(self._hooks.register(request_id, last4, expires_at, sent))

    async def sent(self, request_id: str, message_id: str) -> None:
        await self._emit(request_id, "otp.sent", {"message_id": message_id})

    async def receipt(self, request_id: str, state: str, error: str) -> None:
        """A delivery receipt's state (DELIVRD, UNDELIV, ...): only final ones count."""
        kind = ("otp.delivered" if state in DELIVERED_STATES
                else "otp.failed" if state in FAILED_STATES else None)
        if kind is not None:
            await self._emit(request_id, kind, {"message_state": state, "error": error})

    async def checked(self, request_id: str, status: str, by: str) -> None:
        """A check's outcome: "ok" verifies the request, "too_many_attempts" voids it."""
        if status == "ok":
            await self._emit(request_id, "otp.verified", {"by": by}, closes=True)
        elif status == "too_many_attempts":
            await self._emit(request_id, "otp.voided", {"reason": status}, closes=True)

    async def expire_due(self) -> int:
        """otp.expired for every open request whose OTP's time is up; how many."""
        at = self._clock()
        expired = 0
        for request_id in await self._hooks.expired(at.timestamp(), SWEEP_BATCH):
            expired += await self._emit(request_id, "otp.expired", {}, closes=True, at=at)
        return expired

    async def _emit(self, request_id: str, kind: str, detail: dict[str, str],
                    closes: bool = False, at: datetime | None = None) -> bool:
        if not self.enabled or not request_id:
            return False
        moment = at or self._clock()
        return bool(await self._quietly(self._hooks.emit(
            request_id, f"ev_{secrets.token_urlsafe(16)}", kind, moment.isoformat(),
            json.dumps(detail), time.time(), closes)))

    @staticmethod
    async def _quietly(call: Awaitable[T]) -> T | None:
        try:
            return await call
        except StoreUnavailable as exc:
            log.warning("webhook event not recorded: store unavailable", error=str(exc))
            return None


def request_of_receipt(about: str) -> str | None:
    """The request id of an OTP SMS's receipt tag, or None for any other reply."""
    return about.removeprefix(RECEIPT_ABOUT) if about.startswith(RECEIPT_ABOUT) else None
