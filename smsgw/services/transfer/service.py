"""Credit transfer ("line to line") at 1112: the rules of credit-transfer.md.

Format checks happen here (step 1); everything that reads or changes the store happens in
one atomic script call (steps 2-4 and the transfer itself): transfer.lua, pin_change.lua.

On a Redis Cluster (the store's single-slot mode) the sender's and the recipient's keys
live in different slots, so a transfer is a journaled two-step: the debit (every check,
the sender's side, and a journal entry under a transfer id, in one script on the sender's
slot), then the credit (idempotent by that id, on the recipient's slot), then the
settlement (the journal entry dropped). `recover` finishes, after a crash, every transfer
left in a journal: it credits and settles it, or reverses it when the recipient cannot
be credited (gone, or its balance or bill would pass the money ceiling). Money is never
created or destroyed: `Store.money` counts a transfer in flight exactly once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from smsgw.config import TransferSettings
from smsgw.core import replies
from smsgw.core.clock import parse_timestamp, period_of, show_moment
from smsgw.core.hashing import Hasher
from smsgw.core.masking import Part, Secret, Shown
from smsgw.core.money import MONEY_CEILING
from smsgw.core.pins import LoggedPin, Pin, pin_value
from smsgw.core.text import in_prefixes, looks_like_digit, parse_prefix_ranges
from smsgw.messages import Inbound, Outbound
from smsgw.observability.logs import get_logger
from smsgw.services.transfer.parse import (
    CommandFields,
    FormatError,
    PinChange,
    Role,
    Transfer,
    command_fields,
    command_of,
)
from smsgw.services.transfer.store import Outcome, PinChangeArgs, TransferArgs, TransferStore
from smsgw.store import Store

RECOVER_AFTER_SECONDS = 30
# why a transfer_credit.lua answer means the transfer must be reversed: the refusal
# its sender is told
REVERSE_BECAUSE = {"no_recipient": "unknown_recipient", "no_room": "recipient_limit"}
PIN_DIGESTS = "transfer.pin_digests"  # Inbound.parsed: (sender, PIN) -> keyed digest
HELP_WORDS = frozenset({"help", "راهنما", "?", "؟"})  # any case, spaces ignored
Journaled = tuple[str, str, dict[str, Any] | None]  # sender, txid, journal entry (if any)

TEMPLATES = replies.Templates(Path(__file__).parent / "templates")

log = get_logger("smsgw.services.transfer")


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_BASE32_PAIRS = [first + second for first in _BASE32 for second in _BASE32]  # by 10 bits


def transfer_ref(identity: str | None) -> str:
    """8 characters that care staff can read out: derived from the message identity, so a
    replay of the same message shows the same reference; random when there is none.
    (The base32 of 5 bytes, 10 bits at a time: base64.b32encode is pure Python.)"""
    seed = int(identity[:10], 16) if identity else int.from_bytes(os.urandom(5), "big")
    pairs = _BASE32_PAIRS
    return (pairs[seed >> 30] + pairs[(seed >> 20) & 1023] + pairs[(seed >> 10) & 1023]
            + pairs[seed & 1023])


def _field_view(role: Role, text: str, valid: bool, first: bool) -> list[Part]:
    if valid and role in (Role.KEYWORD, Role.RECIPIENT, Role.AMOUNT):
        return [Shown(text)]
    if first and text != "" and looks_like_digit(text[0]):
        # a wrong first part that starts with a digit: a stand-in 0 keeps it a number,
        # so that the masked text is still a transfer attempt (see grammar._kind)
        return [Shown("0"), text[1:]]
    return [text]


def _fields(message: Inbound) -> CommandFields:
    """The message's fields, parsed once: `handle` and `log_view` both read them."""
    found = message.parsed.get("transfer")
    if not isinstance(found, CommandFields):
        found = message.parsed["transfer"] = command_fields(message.text, message.from_log)
    return found


def _optional_moment(value: str) -> datetime | None:
    return parse_timestamp(value) if value else None


class TransferService:
    def __init__(
        self,
        settings: TransferSettings,
        store: Store,
        hasher: Hasher,
        default_language: str,
    ) -> None:
        self.short_code = settings.short_code
        self._cfg = settings
        self._store = store
        self._scripts = TransferStore(store)
        self._hasher = hasher
        self._default_language = default_language
        self._prefixes = parse_prefix_ranges(settings.prefixes)
        self._open_from = _optional_moment(settings.open_from)
        self._open_until = _optional_moment(settings.open_until)

    async def handle(self, message: Inbound) -> list[Outbound]:
        parsed = _fields(message)
        if parsed.compact.casefold() in HELP_WORDS:  # interfaces.md
            return [await self._reply_in_own_language(message, "help", "transfer_commands")]
        is_open = self._is_open(message.at)
        command = command_of(parsed)
        if isinstance(command, FormatError):
            section, name = ("format", command.value) if is_open else ("transfer", "closed")
            return [await self._reply_in_own_language(message, section, name)]
        # a command outside the window is refused by its script, after the script looked
        # for an outcome already decided (a redelivery just after closing time is
        # answered with what was decided before it)
        if isinstance(command, Transfer):
            outcome = await self._apply_transfer(message, command, is_open)
        else:
            outcome = await self._apply_pin_change(message, command, is_open)
            if outcome["status"] == "ok" and outcome.get("txid"):
                # a journaled transfer's debit, answered again for a PIN change text on
                # its reused id: finished first, as the transfer text's would be (it may
                # have been reversed since: then its refusal is what was decided)
                outcome = await self._finish_debited(message.sender, outcome, None)
        return self._replies(message, command, outcome)

    def replies_for(self, message: Inbound, outcome: dict[str, Any]) -> list[Outbound]:
        """The replies of a message whose command's outcome is known (its row in the
        outbox, taken over): as `handle` rendered them, with no store call."""
        command = command_of(_fields(message))
        if isinstance(command, FormatError):  # only commands' outcomes are held
            raise ValueError("no command in a held message")
        return self._replies(message, command, cast(Outcome, outcome))

    def _replies(self, message: Inbound, command: Transfer | PinChange,
                 outcome: Outcome) -> list[Outbound]:
        """The replies of an outcome, by the outcome: one answered again (an SMSC that
        reused a message id for another text) is told as it was decided, whatever this
        text commands; the text fills in only what an outcome stored by an earlier version
        did not say."""
        transfer = command if isinstance(command, Transfer) else None
        # whom it credited, or the refusal names (an outcome stored before outcomes said
        # so: the text's)
        recipient = outcome.get("recipient") or (transfer.recipient if transfer else "")
        if outcome["status"] == "ok":
            return self._transfer_replies(message, recipient, outcome)
        return [self._refusal_or_notice(message, outcome, recipient,
                                        transfer.amount if transfer else 0)]

    def log_view(self, message: Inbound) -> list[Part]:
        """What a log may show (masking.py): a valid recipient and amount, the command
        keyword, a valid PIN as its token; every other digit hidden. Each part keeps its
        role, its emptiness and its validity, so the masked text gets the same reply."""
        parsed = _fields(message)
        parts: list[Part] = []
        for index, field in enumerate(parsed.fields):
            if index:
                parts.append(Shown(":"))
            if field.valid and field.role is Role.AMOUNT:
                parts.append(Shown(self._amount_view(field.text)))
            elif field.valid and field.role in (Role.PIN, Role.NEW_PIN):
                # the digest the store call uses too: one HMAC per PIN of the message
                digest = self._pin_digest(message, pin_value(field.text))
                parts.append(Secret(LoggedPin(digest)))
            else:
                parts += _field_view(field.role, field.text, field.valid, first=index == 0)
        return parts

    def _amount_view(self, text: str) -> str:
        """A valid amount as a log shows it: as typed within min..max (the replies show
        it); outside, a stand-in on the same side (no reply shows such an amount, and it
        may well be a PIN typed in the amount's place: `recipient:PIN:amount`; a valid
        amount has no leading zero, transfer.lark)."""
        value = int(text.replace(",", "") or "0")  # valid: within the ceiling
        if value < self._cfg.min_amount:
            return "0"
        if value > self._cfg.max_amount:
            return str(MONEY_CEILING)
        return text

    def _is_open(self, at: datetime) -> bool:
        if self._open_from is not None and at < self._open_from:
            return False
        return not (self._open_until is not None and at >= self._open_until)

    async def _reply_in_own_language(self, message: Inbound, section: str, name: str) -> Outbound:
        language = replies.pick_language(
            await self._store.subscriber_language(message.sender), self._default_language
        )
        return self._reply(message, language, section, name)

    def _reply(
        self, message: Inbound, language: str, section: str, name: str, **values: Any
    ) -> Outbound:
        return Outbound(
            to=message.sender,
            sender=self.short_code,
            text=TEMPLATES.render(language, section, name, **values),
            kind=f"{section}.{name}",
        )

    async def _apply_transfer(self, message: Inbound, command: Transfer,
                              is_open: bool) -> Outcome:
        sender, recipient = message.sender, command.recipient
        period = period_of(message.at, self._cfg.timezone, self._cfg.calendar)
        cfg = self._cfg
        args = TransferArgs(
            pin=self._pin_digest(message, command.pin),
            # beyond the ceiling every amount is refused alike (the parser already
            # refuses such amounts; this keeps the script's argument bounded regardless)
            amount=min(command.amount, MONEY_CEILING + 1),
            fee=cfg.fee, min_amount=cfg.min_amount, max_amount=cfg.max_amount,
            daily_cap=cfg.daily_cap, monthly_cap=cfg.monthly_cap,
            at=message.at.isoformat(), ref=transfer_ref(message.identity),
            in_range=int(in_prefixes(recipient, self._prefixes)),
            max_attempts=cfg.max_pin_attempts, sender=sender, recipient=recipient,
            default_lang=self._default_language, open=int(is_open), tz=cfg.timezone)
        if not self._store.single_slot:
            return await self._scripts.transfer(message, period, args)
        txid = message.identity or secrets.token_hex(16)
        # indexed before the debit, so that recovery finds it without a keyspace scan
        recipient_fields, _ = await asyncio.gather(
            self._scripts.recipient_fields(recipient),
            self._store.index_journal(sender, txid, int(message.at.timestamp() * 1000)))
        outcome, entry = await self._scripts.debit(message, period, args, txid,
                                                   recipient_fields)
        if outcome["status"] != "ok":
            await self._store.unindex_journal(sender, txid)
            return outcome
        return await self._finish_debited(sender, outcome, entry)

    async def _finish_debited(self, sender: str, outcome: Outcome,
                              entry: dict[str, Any] | None) -> Outcome:
        """Credit and settle a transfer just debited (`entry`: its journal entry, if the
        debit wrote it just now; else it is read back)."""
        txid = outcome["txid"]
        finished = await self.complete(sender, txid, entry)
        if finished == "stuck":  # left indexed: recovery tries it again
            return {"status": "account_error", "lang": outcome["lang"]}
        await self._store.unindex_journal(sender, txid)
        if finished == "reversed":
            reason = await self._scripts.reversal_reason(sender, txid)
            return {"status": reason or "unknown_recipient", "lang": outcome["lang"],
                    "recipient": outcome.get("recipient", "")}
        return outcome

    async def complete(self, sender: str, txid: str,
                       entry: dict[str, Any] | None = None) -> str:
        """Finish a debited transfer: credit the recipient (once) and settle; reverse it
        if the recipient can't be credited. `settled`, `reversed`, `gone` (finished
        before), or `stuck` (a journal entry or sender that can't be read: left in the
        journal, its money counted as in flight). Safe to run twice, or from two
        processes at once. `entry`: the journal entry, when the caller has just written it."""
        if entry is None:
            entry = (await self._store.journal_entries(sender, txid)).get(txid)
        if entry is None:
            was_reversed = await self._scripts.reversal_reason(sender, txid) is not None
            return "reversed" if was_reversed else "gone"
        credit = await self._scripts.credit(sender, txid, entry)
        if credit["status"] == "stale":  # too late to know whether it was credited
            log.error("a journaled transfer is too old to finish safely: left for care",
                      sender=sender, txid=txid)
            return "stuck"
        reason = REVERSE_BECAUSE.get(credit["status"], "")
        settled = await self._scripts.settle(sender, txid, entry, reason)
        return str(settled["status"])

    async def recover(self, at: datetime, older_than_seconds: float = RECOVER_AFTER_SECONDS,
                      full: bool = False) -> Counter[str]:
        """Finish every journaled transfer older than that (a crashed or stopped gateway's):
        counts of `settled`, `reversed`, `gone`, and `young` (left to its own gateway).
        By the journal index; `full` scans the keyspace instead (at a gateway's start,
        and `smsgw admin recover`: it also finds journals written before the index)."""
        cutoff = at - timedelta(seconds=older_than_seconds)
        found, young = await (self._journals_by_scan(cutoff) if full
                              else self._journals_by_index(cutoff))
        counts: Counter[str] = Counter(young=young)
        for sender, txid, entry in found:
            finished = "gone"  # no entry: finished, or never debited (indexed first)
            if entry is not None:
                finished = await self.complete(sender, txid, entry)
                counts[finished] += 1
            if finished != "stuck":  # a stuck one stays indexed, to be tried again
                await self._store.unindex_journal(sender, txid)
        return counts

    async def _journals_by_scan(self, cutoff: datetime) -> tuple[list[Journaled], int]:
        found: list[Journaled] = []
        young = 0
        for sender in await self._store.journal_senders():
            for txid, entry in (await self._store.journal_entries(sender)).items():
                if parse_timestamp(entry["at"]) > cutoff:
                    young += 1
                else:
                    found.append((sender, txid, entry))
        return found, young

    async def _journals_by_index(self, cutoff: datetime) -> tuple[list[Journaled], int]:
        indexed, young = await self._store.indexed_journals(int(cutoff.timestamp() * 1000))
        found: list[Journaled] = []
        for sender, txid in indexed:
            entry = (await self._store.journal_entries(sender, txid)).get(txid)
            found.append((sender, txid, entry))
        return found, young

    def _pin_digest(self, message: Inbound, pin: Pin) -> str:
        """The keyed digest of a PIN of this message, made once for the store call and the
        log's token alike (kept on the message, as its parse is). A log's token (only
        parsed from a text read back from a log) is the digest."""
        if isinstance(pin, LoggedPin):
            return pin.digest
        # keyed by the sender too: a copy of the message for another sender (dataclass
        # `replace` shares `parsed`) must not take this one's digest
        digests = cast(dict[tuple[str, str], str],
                       message.parsed.setdefault(PIN_DIGESTS, {}))
        key = (message.sender, pin)
        found = digests.get(key)
        if found is None:
            found = digests[key] = self._hasher.pin_digest(message.sender, pin)
        return found

    async def _apply_pin_change(self, message: Inbound, command: PinChange,
                                is_open: bool) -> Outcome:
        return await self._scripts.change_pin(message, PinChangeArgs(
            old_pin=self._pin_digest(message, command.old_pin),
            new_pin=self._pin_digest(message, command.new_pin),
            max_attempts=self._cfg.max_pin_attempts, at=message.at.isoformat(),
            default_lang=self._default_language, open=int(is_open)))

    def _transfer_replies(
        self, message: Inbound, recipient: str, outcome: Outcome
    ) -> list[Outbound]:
        sender_language = replies.pick_language(outcome["lang"], self._default_language)
        recipient_language = replies.pick_language(
            outcome["recipient_lang"], self._default_language
        )
        sent = "sent_first" if outcome["pin_set"] else "sent"
        received = f"received_{outcome['recipient_plan']}"
        at = parse_timestamp(outcome["at"])
        # to the recipient the transfer credited: an outcome answered again (a repeat, an
        # SMSC reusing a message id with another text) goes to whom it was
        told = [self._confirmation(message.sender, message, recipient, outcome, at,
                                   sender_language, sent)]
        if not recipient:
            # an outcome stored before outcomes named their recipient, answered again for
            # another command's text: the sender is told; the recipient was, at the time
            return told
        return [*told, self._confirmation(recipient, message, recipient, outcome, at,
                                          recipient_language, received)]

    def _confirmation(
        self,
        to: str,
        message: Inbound,
        recipient: str,
        outcome: Outcome,
        at: datetime,
        language: str,
        name: str,
    ) -> Outbound:
        text = TEMPLATES.render(
            language,
            "transfer",
            name,
            amount=replies.show_money(int(outcome["amount"]), language),
            fee=replies.show_money(int(outcome["fee"]), language),
            balance=replies.show_money(int(outcome["balance"]), language),
            sender=replies.show_number(message.sender, language),
            recipient=replies.show_number(recipient, language) if recipient else "-",
            # in the zone it was decided in (an outcome stored before it said so: ours)
            when=show_moment(at, outcome.get("tz") or self._cfg.timezone, language),
            ref=outcome["ref"],
        )
        return Outbound(to, self.short_code, text, f"transfer.{name}", receipt=self._cfg.receipts)

    def _refusal_or_notice(
        self, message: Inbound, outcome: Outcome, recipient: str, command_amount: int
    ) -> Outbound:
        language = replies.pick_language(outcome.get("lang", ""), self._default_language)
        cfg = self._cfg
        status = outcome["status"]
        # the rules as decided (an outcome stored by an earlier version: as set now)
        cap = outcome.get("cap", cfg.monthly_cap if status == "monthly_cap" else cfg.daily_cap)

        def money(amount: int) -> str:
            return replies.show_money(amount, language)

        return self._reply(
            message,
            language,
            "transfer",
            status,
            left=money(int(outcome.get("attempts_left", 0))),
            attempts=money(int(outcome.get("max_attempts", cfg.max_pin_attempts))),
            max=money(int(outcome.get("max", cfg.max_amount))),
            min=money(int(outcome.get("min", cfg.min_amount))),
            cap=money(int(cap)),
            recipient=replies.show_number(recipient, language) if recipient else "",
            remaining=money(max(int(outcome.get("remaining", 0)), 0)),
            balance=money(int(outcome.get("balance", 0))),
            needed=money(int(outcome.get("needed", command_amount + cfg.fee))),
            fee=money(int(outcome.get("fee", cfg.fee))),
        )
