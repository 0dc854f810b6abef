"""The credit transfer's store calls: its scripts (scripts/*.lua), their keys and
arguments, and the journal entry of a transfer between two slots (a Redis Cluster).

Each script's keys and arguments are a NamedTuple: their names are what the Lua reads
(`K.sender`, `A.amount`), their order is the order they are sent in (store/script.py).
The service gives numbers, moments and rules; the keys are built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Required, TypedDict

from smsgw.core.clock import Period
from smsgw.messages import Inbound
from smsgw.store import Store
from smsgw.store.keys import (
    credited_key,
    day_counter_key,
    history_key,
    journal_key,
    month_counter_key,
    reversed_key,
    subscriber_key,
    unused_key,
)
from smsgw.store.script import Script, json_result

SCRIPTS = Path(__file__).with_name("scripts")
DAY_COUNTER_TTL = 3 * 24 * 3600
MONTH_COUNTER_TTL = 70 * 24 * 3600
# How long a recipient remembers a credited transfer id. A credit is only attempted right
# after reading the sender's journal entry, and never for a transfer debited longer ago
# than this (transfer_credit.lua: `stale`), so a repeat is always recognised.
CREDITED_KEEP_SECONDS = 3600
REVERSAL_MEMORY_SECONDS = 7 * 24 * 3600  # as long as a processed message is remembered
MISSING_MONEY = "-"  # debit mode: the recipient has no such field (no rials look like it)


class Outcome(TypedDict, total=False):
    """A transfer's or a PIN change's outcome (what transfer.lua and pin_change.lua
    answer, and what the sender is told)."""

    status: Required[str]
    lang: str
    recipient_lang: str
    recipient_plan: str
    # whom it credited, or the refusal names (an outcome answered again says so, whatever
    # the text)
    recipient: str
    tz: str  # ok: the zone its confirmations tell the time in
    needed: int  # insufficient: amount + fee, as decided
    min: int  # the rule a refusal names, as it was when decided
    max: int
    cap: int
    ref: str
    at: str
    amount: int
    fee: int
    balance: int
    pin_set: bool
    txid: str
    debited_now: bool
    debited_at: int  # debit mode, debited just now: the server's clock (epoch s)
    attempts_left: int
    max_attempts: int
    remaining: int


class StepOutcome(TypedDict, total=False):
    """A journaled transfer's credit or settlement."""

    status: Required[str]
    plan: str
    balance: int


class TransferKeys(NamedTuple):
    sender: str
    day: str  # the sender's counters
    month: str
    sender_history: str
    recipient: str  # debit mode: a placeholder (another slot)
    recipient_history: str  # debit mode: a placeholder
    journal: str  # whole mode: a placeholder


class TransferArgs(NamedTuple):
    pin: str  # the digest of the PIN given
    amount: int
    fee: int
    min_amount: int
    max_amount: int
    daily_cap: int
    monthly_cap: int
    at: str  # the message's moment (ISO)
    ref: str  # the reference both parties are shown
    in_range: int  # 1/0: the recipient is in the operator's number ranges
    max_attempts: int  # PIN strikes before the service is blocked
    sender: str
    recipient: str
    day_ttl: int = DAY_COUNTER_TTL
    month_ttl: int = MONTH_COUNTER_TTL
    mode: str = "whole"  # | "debit": the sender's side and a journal entry only
    # debit mode: the recipient as read just before ('' plan = unknown), and the id
    recipient_plan: str = ""
    recipient_lang: str = ""
    recipient_balance: str = ""
    recipient_bill: str = ""
    txid: str = ""
    default_lang: str = ""  # the gateway's reply language, for a sender who has none
    open: int = 1  # 1/0: within [transfer] open_from..open_until
    tz: str = ""  # [transfer] timezone: the zone a confirmation tells the time in


class PinChangeKeys(NamedTuple):
    sender: str
    history: str


class PinChangeArgs(NamedTuple):
    old_pin: str  # digests
    new_pin: str
    max_attempts: int
    at: str
    default_lang: str = ""  # the gateway's reply language, for a sender who has none
    open: int = 1  # 1/0: within [transfer] open_from..open_until


class CreditKeys(NamedTuple):
    recipient: str
    history: str
    credited: str  # the ids credited lately (a zset)


class CreditArgs(NamedTuple):
    txid: str
    amount: int
    sender: str
    ref: str
    at: str
    keep: int  # seconds a credited id is remembered
    debited_at: str  # the debit's server time (epoch s); '' in a journal of before


class SettleKeys(NamedTuple):
    sender: str
    journal: str
    history: str
    day: str  # the counters the debit counted in (from the journal entry)
    month: str
    reversed: str  # the reversal marker


class SettleArgs(NamedTuple):
    txid: str
    mode: str  # done | reverse
    at: str
    marker_ttl: int
    reason: str  # reverse: the refusal the sender is told


TRANSFER = Script(SCRIPTS / "transfer.lua", TransferKeys, TransferArgs, json_result(Outcome),
                  envelope=True)
PIN_CHANGE = Script(SCRIPTS / "pin_change.lua", PinChangeKeys, PinChangeArgs,
                    json_result(Outcome), envelope=True)
TRANSFER_CREDIT = Script(SCRIPTS / "transfer_credit.lua", CreditKeys, CreditArgs,
                         json_result(StepOutcome))
TRANSFER_SETTLE = Script(SCRIPTS / "transfer_settle.lua", SettleKeys, SettleArgs,
                         json_result(StepOutcome))


class TransferStore:
    """The transfer's calls on a Store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def transfer(self, message: Inbound, period: Period, args: TransferArgs) -> Outcome:
        """The whole transfer in one call (one server: both parties' keys together)."""
        sender, recipient = args.sender, args.recipient
        keys = TransferKeys(
            subscriber_key(sender), day_counter_key(sender, period.day),
            month_counter_key(sender, period.month), history_key(sender),
            subscriber_key(recipient), history_key(recipient), unused_key(sender))
        return await self._store.run_command(TRANSFER, message, keys, args)

    async def recipient_fields(self, recipient: str) -> list[str]:
        """What debit mode hands the script about the recipient: plan and language ('' if
        missing), balance and bill (MISSING_MONEY if missing, as they are: an empty or
        malformed value must be refused here exactly as the credit step refuses it)."""
        plan, lang, balance, bill = await self._store.subscriber_fields(
            recipient, "plan", "lang", "balance", "bill")
        return [plan or "", lang or "", MISSING_MONEY if balance is None else balance,
                MISSING_MONEY if bill is None else bill]

    async def debit(self, message: Inbound, period: Period, args: TransferArgs, txid: str,
                    recipient: list[str]) -> tuple[Outcome, dict[str, Any] | None]:
        """The sender's side and the journal entry under `txid` (the recipient as
        `recipient_fields` read it). With the journal entry, when debited just now (not
        an earlier outcome answered again)."""
        sender = args.sender
        keys = TransferKeys(
            subscriber_key(sender), day_counter_key(sender, period.day),
            month_counter_key(sender, period.month), history_key(sender),
            unused_key(sender), unused_key(sender), journal_key(sender))
        plan, language, balance, bill = recipient
        outcome = await self._store.run_command(
            TRANSFER, message, keys,
            args._replace(mode="debit", recipient_plan=plan, recipient_lang=language,
                          recipient_balance=balance, recipient_bill=bill, txid=txid))
        if outcome["status"] != "ok" or not outcome.pop("debited_now", False):
            return outcome, None
        return outcome, {"recipient": args.recipient, "amount": args.amount,
                         "ref": outcome["ref"], "at": outcome["at"],
                         "day_key": keys.day, "month_key": keys.month,
                         "debited_at": outcome.get("debited_at")}

    async def credit(self, sender: str, txid: str, entry: dict[str, Any]) -> StepOutcome:
        """Credit a journaled transfer's recipient, once per `txid`."""
        recipient = entry["recipient"]
        return await self._store.run(
            TRANSFER_CREDIT,
            CreditKeys(subscriber_key(recipient), history_key(recipient),
                       credited_key(recipient)),
            CreditArgs(txid, entry["amount"], sender, entry["ref"], entry["at"],
                       CREDITED_KEEP_SECONDS, str(entry.get("debited_at") or "")))

    async def settle(self, sender: str, txid: str, entry: dict[str, Any],
                     reverse_because: str) -> StepOutcome:
        """Drop a credited transfer from the journal; or, with a reason, give it back."""
        return await self._store.run(
            TRANSFER_SETTLE,
            SettleKeys(subscriber_key(sender), journal_key(sender), history_key(sender),
                       entry["day_key"], entry["month_key"], reversed_key(sender, txid)),
            SettleArgs(txid, "reverse" if reverse_because else "done", entry["at"],
                       REVERSAL_MEMORY_SECONDS, reverse_because))

    async def reversal_reason(self, sender: str, txid: str) -> str | None:
        """Why this journaled transfer was reversed (the refusal its sender is told), or
        None if it was not. (A marker from before reasons were kept says "1".)"""
        reason = await self._store.plain(self._store.redis.get(reversed_key(sender, txid)))
        if reason is None:
            return None
        return "unknown_recipient" if reason == "1" else str(reason)

    async def change_pin(self, message: Inbound, args: PinChangeArgs) -> Outcome:
        sender = message.sender
        return await self._store.run_command(
            PIN_CHANGE, message, PinChangeKeys(subscriber_key(sender), history_key(sender)),
            args)
