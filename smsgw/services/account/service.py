"""The account enquiry's rules (interfaces.md, "Account enquiry"): no PIN (the network
authenticates the sender), no write, no limit; answered in the subscriber's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smsgw.config import Settings
from smsgw.core import replies
from smsgw.core.clock import show_moment
from smsgw.messages import Inbound, Outbound
from smsgw.services.account.history import TransferLine
from smsgw.services.account.parse import Enquiry, parse_enquiry
from smsgw.services.account.reads import Account, read_account, recent_transfers
from smsgw.store import Store

TEMPLATES = replies.Templates(Path(__file__).parent / "templates")
SHOWN_TRANSFERS = 3


class AccountService:
    """Short code `[account] short_code` (1113): BAL, HIST; anything else: the commands."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.short_code = settings.account.short_code
        self._transfer_code = settings.transfer.short_code
        self._timezone = settings.transfer.timezone
        self._default_language = settings.replies.language
        self._store = store

    async def handle(self, message: Inbound) -> list[Outbound]:
        enquiry = parse_enquiry(message.text)
        account = await read_account(self._store, message.sender)
        if account is None:
            return [self._reply(message, self._default_language, "not_subscriber")]
        language = replies.pick_language(account.language, self._default_language)
        if enquiry is Enquiry.BALANCE:
            return [self._balance(message, account, language)]
        if enquiry is Enquiry.HISTORY:
            transfers = await recent_transfers(self._store, message.sender, SHOWN_TRANSFERS)
            return [self._history(message, transfers, language)]
        return [self._reply(message, language, "commands", account=self.short_code,
                            transfer=self._transfer_code)]

    def _balance(self, message: Inbound, account: Account, language: str) -> Outbound:
        if account.plan == "postpaid":
            name, amount = ("bill", account.bill) if account.bill >= 0 else (
                "bill_credit", -account.bill)
        else:
            name, amount = "balance", account.balance
        return self._reply(message, language, name,
                           when=show_moment(message.at, self._timezone, language),
                           amount=replies.show_money(amount, language))

    def _history(self, message: Inbound, transfers: list[TransferLine],
                 language: str) -> Outbound:
        if not transfers:
            return self._reply(message, language, "no_history")
        lines = "\n".join(self._line(transfer, language) for transfer in transfers)
        return self._reply(message, language, "history", lines=lines)

    def _line(self, transfer: TransferLine, language: str) -> str:
        # show_moment writes "<date> <time>": a line shows the date only
        date = show_moment(transfer.at, self._timezone, language).partition(" ")[0]
        return TEMPLATES.render(language, "account", transfer.direction, date=date,
                                number=replies.show_number(transfer.other, language),
                                amount=replies.show_money(transfer.amount, language))

    def _reply(self, message: Inbound, language: str, name: str, **values: Any) -> Outbound:
        return Outbound(to=message.sender, sender=self.short_code,
                        text=TEMPLATES.render(language, "account", name, **values),
                        kind=f"account.{name}")
