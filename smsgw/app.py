"""Wiring: settings -> store -> the services of the registry -> router. Every command
builds its app here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from smsgw.config import Settings
from smsgw.core.hashing import Hasher
from smsgw.router import Router
from smsgw.services import Service
from smsgw.services.otp.service import OtpService
from smsgw.services.registry import Context, plugins
from smsgw.services.transfer.service import TransferService
from smsgw.store import Store


@dataclass
class App:
    settings: Settings
    store: Store
    hasher: Hasher
    router: Router
    services: dict[str, Service]  # by name, as the registry lists them

    @property
    def otp(self) -> OtpService:
        """The OTP service: the HTTP API is its other door."""
        return cast(OtpService, self.services["otp"])

    @property
    def transfer(self) -> TransferService:
        """The transfer service: journal recovery (workers/recovery.py) finishes its work."""
        return cast(TransferService, self.services["transfer"])

    async def close(self) -> None:
        await self.store.close()


def build_app(settings: Settings, store: Store | None = None) -> App:
    store = store or Store.connect(settings.redis.url, cluster=settings.redis.cluster)
    hasher = Hasher(settings.security.hash_key)
    context = Context(settings, store, hasher)
    services = {plugin.name: plugin.build(context) for plugin in plugins()}
    router = Router(services.values(), store, settings.replies.language)
    return App(settings=settings, store=store, hasher=hasher, router=router,
               services=services)
