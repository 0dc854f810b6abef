"""The money invariant (credit-transfer.md): Σ prepaid balances − Σ postpaid bills + Σ
fees collected stays the same through every transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smsgw.store.store import Store


def money_total(subscribers: dict[str, dict[str, str]]) -> int:
    """The spec's invariant: sum of prepaid balances - sum of postpaid bills + fees collected."""
    total = 0
    for fields in subscribers.values():
        total += int(fields.get("balance") or 0) - int(fields.get("bill") or 0)
        total += int(fields.get("fees_paid") or 0)
    return total


async def money(store: Store) -> int:
    """The invariant over the whole store, counting once each transfer that is debited
    but not yet credited (in flight between two slots)."""
    return (await money_and_fees(store))[0]


async def money_and_fees(store: Store) -> tuple[int, int]:
    """`money`, and the fees taken so far over every subscriber, from one read."""
    subscribers = await store.all_subscribers()
    fees = sum(int(fields.get("fees_paid") or 0) for fields in subscribers.values())
    total = money_total(subscribers)
    for sender in await store.journal_senders():
        for txid, entry in (await store.journal_entries(sender)).items():
            if not await store.was_credited(entry["recipient"], txid):
                total += int(entry["amount"])
    return total, fees
