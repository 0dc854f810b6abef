"""Replies held by their command (transport/outbox.py, "held with the command"): on one
server, a transfer's script writes the message's outbox row itself, the outcome in it;
a successor renders the same replies from it; the row leaves once every reply is taken;
no PIN is ever in it. And a claim whose answer was lost strands nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsgw.app import App
from smsgw.core import masking
from smsgw.messages import Inbound, Outbound
from smsgw.store import StoreUnavailable
from smsgw.store.keys import subscriber_key
from smsgw.store.outbox import ClaimArgs, Waiting
from smsgw.transport.outbox import Held, Outbox
from smsgw.workers.outbox import OutboxWorker
from tests.attacks import tried
from tests.conftest import add_subscribers
from tests.test_outbox import done

SENDER, RECIPIENT = "989121110000", "989351234567"
AT = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)


async def funded(app: App, pin: str | None = "55555") -> None:
    await add_subscribers(app.store, (SENDER, "prepaid", 1_000_000, 0),
                          (RECIPIENT, "prepaid", 0, 0))
    if pin is not None:
        await app.store.redis.hset(subscriber_key(SENDER), "pin",
                                   app.hasher.pin_digest(SENDER, pin))


def outbox_of(app: App) -> Outbox:
    return Outbox(app.store, app.hasher, app.settings, render=app.router.replies_for)


async def decided(app: App, outbox: Outbox, text: str, msg_id: str = "m1"
                  ) -> tuple[list[Outbound], list[Held]]:
    """One message through the router as the gateway routes it: its row prepared, its
    replies decided and held."""
    slot = outbox.slot(SENDER)
    inbound = Inbound(SENDER, "1112", text, AT, msg_id=msg_id,
                      identity=app.hasher.message_identity("id", SENDER, msg_id),
                      remember_seconds=600, hold=slot)
    outbox.prepare(slot, inbound, masking.inbound_text(inbound, app.router.log_view(inbound),
                                                       app.hasher))
    replies = await app.router.handle(inbound)
    return replies, await outbox.hold(inbound, replies)


async def taken_over(app: App, first: Outbox) -> list[Held]:
    await first.end_lease()
    sent: list[Held] = []
    await OutboxWorker(outbox_of(app), sent.extend).once()
    return sent


async def test_a_transfers_replies_are_one_row_written_by_its_script(app: App) -> None:
    await funded(app)
    outbox = outbox_of(app)
    await outbox.renew()
    replies, held = await decided(app, outbox, "09351234567:2500:55555")
    assert [r.kind for r in replies] == ["transfer.sent", "transfer.received_prepaid"]
    waiting = await outbox.rows.waiting()
    if app.store.single_slot:  # a cluster: the outbox is another slot; a put of its own
        assert len(waiting) == 2
        return
    assert len(waiting) == 1 and {h.reply_id for h in held} == {waiting[0].reply_id}
    assert "55555" not in waiting[0].entry
    sent = await taken_over(app, outbox)
    assert [h.reply for h in sent] == replies  # rendered again: the very same texts


async def test_the_row_leaves_once_every_reply_is_taken(app: App) -> None:
    if app.store.single_slot:
        pytest.skip("held by the command on one server only")
    await funded(app)
    outbox = outbox_of(app)
    _, (to_sender, to_recipient) = await decided(app, outbox, "09351234567:2500:55555")
    outbox.finished(to_sender, done())
    await outbox.flush()
    assert len(await outbox.rows.waiting()) == 1 and outbox.holding == 1
    outbox.finished(to_recipient, done())
    await outbox.flush()
    assert await outbox.rows.waiting() == [] and outbox.holding == 0


async def test_a_repeat_is_held_again_and_nothing_applied_twice(app: App) -> None:
    if app.store.single_slot:
        pytest.skip("held by the command on one server only")
    await funded(app)
    outbox = outbox_of(app)
    first, held = await decided(app, outbox, "09351234567:2500:55555")
    for each in held:
        outbox.finished(each, done())
    await outbox.flush()
    again, _ = await decided(app, outbox, "09351234567:2500:55555")  # the same message id
    assert again == first
    assert len(await outbox.rows.waiting()) == 1  # held again, to be sent again
    assert await app.store.subscriber_fields(RECIPIENT, "balance") == ["2500"]


async def test_refusals_and_pin_changes_are_held_and_rendered_again(app: App) -> None:
    if app.store.single_slot:
        pytest.skip("held by the command on one server only")
    await funded(app)
    outbox = outbox_of(app)
    await outbox.renew()
    decisions = [await decided(app, outbox, text, f"m{n}") for n, text in enumerate([
        "09351234567:2500:11111", "09351234567:900000000:55555",
        "PIN:55555:12345:12345", "09351234567:3000:12345"])]
    replies = sorted(r.text for each, _ in decisions for r in each)
    sent = await taken_over(app, outbox)
    assert sorted(h.reply.text for h in sent) == replies
    assert {h.reply.kind for h in sent} >= {"transfer.wrong_pin", "transfer.pin_changed"}


async def test_admin_outbox_shows_a_held_rows_replies_masked(app: App) -> None:
    if app.store.single_slot:
        pytest.skip("held by the command on one server only")
    from smsgw.transport.outbox import listing
    await funded(app)
    await decided(app, outbox_of(app), "09351234567:2500:55555")
    rows = await listing(app.store, app.hasher, app.settings, render=app.router.replies_for)
    assert [row["kind"] for row in rows] == ["transfer.sent", "transfer.received_prepaid"]
    unrendered = await listing(app.store, app.hasher, app.settings)
    assert len(unrendered) == 1 and "55555" not in unrendered[0]["text"]


async def test_a_claim_whose_answer_is_lost_strands_nothing(app: App) -> None:
    """The claim ran (the rows are now the claimer's) but its answer never came: the
    next pass takes them again, and what the claimer has in hand is not sent twice."""
    await funded(app)
    first = outbox_of(app)
    _, held = await decided(app, first, "09351234567:2500:55555")
    await first.end_lease()
    second = outbox_of(app)
    sent: list[Held] = []
    worker = OutboxWorker(second, sent.extend)
    real_claim = second.rows.claim
    lost = {"count": 0}

    async def answer_lost(shard: int, args: ClaimArgs) -> list[Waiting]:
        found = await real_claim(shard, args)
        if found and lost["count"] == 0:
            lost["count"] += 1
            raise StoreUnavailable("connection to Redis lost")
        return found

    second.rows.claim = answer_lost  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await worker.once()
    assert sent == []
    await worker.once()
    assert sorted(h.reply.text for h in sent) == sorted(h.reply.text for h in held)
    await worker.once()  # in hand now: not sent again
    assert len(sent) == len(held)


AMOUNTS = st.one_of(st.integers(0, 2_000_000).map(str), st.sampled_from(["", "1e5", "۲۵۰۰",
                                                                        "2,500", "-5"]))
PINS = st.one_of(st.sampled_from(["55555", "11111", "", "5555", "٥٥٥٥٥"]),
                 st.text("0123456789", min_size=1, max_size=8))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(commands=st.lists(st.tuples(st.sampled_from(["09351234567", "9351234567", "0912111000",
                                                    "PIN"]),
                                   AMOUNTS, PINS), min_size=1, max_size=5))
async def test_rendered_again_is_what_was_decided_for_any_command(
        app: App, commands: list[tuple[str, str, str]]) -> None:
    """Whatever the subscriber sends, a successor sends exactly the replies decided."""
    tried("the outbox: held replies rendered again")
    if app.store.single_slot:
        return
    await app.store.redis.flushdb()
    await funded(app, pin=None)
    outbox = outbox_of(app)
    await outbox.renew()
    decided_texts: list[str] = []
    for n, (first, amount, pin) in enumerate(commands):
        text = f"{first}:{amount}:{pin}" if first != "PIN" else f"PIN:{amount}:{pin}:{pin}"
        replies, _ = await decided(app, outbox, text, f"h{n}")
        decided_texts += [reply.text for reply in replies]
    sent = await taken_over(app, outbox)
    # what was held with the command is rendered again; the rest (format errors) were
    # held as replies of their own: together, every reply decided
    assert sorted(h.reply.text for h in sent) == sorted(decided_texts)
    assert all("55555" not in w.entry for w in await outbox.rows.waiting())


def _outcome_of(entry: str) -> dict[str, Any]:
    import orjson
    parsed: dict[str, Any] = orjson.loads(entry)
    return parsed


async def test_a_held_row_holds_the_outcome_and_the_logged_text(app: App) -> None:
    if app.store.single_slot:
        pytest.skip("held by the command on one server only")
    await funded(app)
    outbox = outbox_of(app)
    await decided(app, outbox, "09351234567:2500:55555")
    (waiting,) = await outbox.rows.waiting()
    row = _outcome_of(waiting.entry)
    assert row["outcome"]["status"] == "ok" and row["recipe"]["from"] == SENDER
    assert row["recipe"]["text"].startswith("09351234567:2500:")
