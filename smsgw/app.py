"""Wiring: settings -> store -> services -> router. Every command builds its app here."""

from __future__ import annotations

from dataclasses import dataclass

from smsgw.config import Settings
from smsgw.core.hashing import Hasher
from smsgw.router import Router
from smsgw.services.account import AccountService
from smsgw.services.otp.events import OtpEvents
from smsgw.services.otp.service import OtpService
from smsgw.services.transfer.service import TransferService
from smsgw.store import Store


@dataclass
class App:
    settings: Settings
    store: Store
    hasher: Hasher
    router: Router
    otp: OtpService
    transfer: TransferService

    async def close(self) -> None:
        await self.store.close()


def build_app(settings: Settings, store: Store | None = None) -> App:
    store = store or Store.connect(settings.redis.url, cluster=settings.redis.cluster)
    hasher = Hasher(settings.security.hash_key)
    language = settings.replies.language
    transfer = TransferService(settings.transfer, store, hasher, language)
    events = OtpEvents(store, enabled=bool(settings.otp.webhook_url))
    otp = OtpService(settings.otp, settings.transfer.timezone, store, hasher, language, events)
    router = Router([transfer, otp, AccountService(settings, store)], store, language)
    return App(settings=settings, store=store, hasher=hasher, router=router, otp=otp,
               transfer=transfer)
