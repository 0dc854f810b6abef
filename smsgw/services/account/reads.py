"""The enquiry's store calls: reads only. An enquiry writes nothing and counts toward no
limit, so it needs no script of its own: one batched field read (read_fields.lua, which
rides in the pipeline with the other calls of its turn) and a plain read of the history.
"""

from __future__ import annotations

from smsgw.core.records import record
from smsgw.services.account.history import TransferLine, last_transfers
from smsgw.store import Store

# Most histories hold a transfer in their newest few entries (the rest: receipts, PIN
# strikes, care actions); only when this many don't hold enough is the whole list read.
FIRST_READ = 64


@record
class Account:
    plan: str  # "prepaid" | "postpaid"
    balance: int  # prepaid credit, rials
    bill: int  # postpaid amount owed, rials; below 0 a credit on the bill
    language: str  # the subscriber's own choice, or ""


async def read_account(store: Store, msisdn: str) -> Account | None:
    """The subscriber's plan, money and language; None for a number the store lacks."""
    plan, balance, bill, language = await store.subscriber_fields(
        msisdn, "plan", "balance", "bill", "lang")
    if not plan:
        return None
    return Account(plan, int(balance or 0), int(bill or 0), language or "")


async def recent_transfers(store: Store, msisdn: str, count: int) -> list[TransferLine]:
    entries = await store.history(msisdn, FIRST_READ)
    found = last_transfers(entries, count)
    if len(found) < count and len(entries) == FIRST_READ:
        found = last_transfers(await store.history(msisdn), count)
    return found
