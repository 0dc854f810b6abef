"""One message, one straight line: route by short code, hand to its service, return replies.

`run`, `replay`, `demo` and `loadtest` all call `Router.handle`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from smsgw.core import replies
from smsgw.core.masking import LogView
from smsgw.messages import Inbound, Outbound
from smsgw.services import Service
from smsgw.store import Store

Render = Callable[[Inbound, dict[str, Any]], list[Outbound]]


class Router:
    def __init__(self, services: Iterable[Service], store: Store, default_language: str) -> None:
        self._routes = {service.short_code: service for service in services}
        # what each service declares safe to show of its texts (masking.py): optional
        self._log_views: dict[str, LogView] = {
            code: view for code, service in self._routes.items()
            if (view := getattr(service, "log_view", None)) is not None}
        # the services that can render a message's replies again from its command's
        # outcome (transport/outbox.py: "held with the command"): optional
        self._renderers: dict[str, Render] = {
            code: render for code, service in self._routes.items()
            if (render := getattr(service, "replies_for", None)) is not None}
        self._store = store
        self._default_language = default_language

    @property
    def short_codes(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def handle(self, message: Inbound) -> list[Outbound]:
        service = self._routes.get(message.to)
        if service is None:
            return [await self._help(message)]
        return await service.handle(message)

    def holds_replies(self, short_code: str) -> bool:
        """Whether a message to this short code may have its replies held by its
        command script (its service renders them again from the outcome)."""
        return short_code in self._renderers

    def replies_for(self, message: Inbound, outcome: dict[str, Any]) -> list[Outbound]:
        """The replies a message got, rendered again from its command's outcome (the
        message as the log shows it). ValueError if its service cannot."""
        render = self._renderers.get(message.to)
        if render is None:
            raise ValueError(f"no service at {message.to} renders replies from an outcome")
        return render(message, outcome)

    def log_view(self, message: Inbound) -> LogView | None:
        """The declaration of the service a message goes to, if it makes one."""
        return self._log_views.get(message.to)

    async def _help(self, message: Inbound) -> Outbound:
        language = replies.pick_language(
            await self._store.subscriber_language(message.sender), self._default_language
        )
        return Outbound(
            to=message.sender,
            sender=message.to,
            text=replies.SHARED.render(language, "help", "unknown_service"),
            kind="help.unknown_service",
        )
