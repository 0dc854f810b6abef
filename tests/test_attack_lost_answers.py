"""Attack: our deliver_sm answers lost with the link, one to three times in a row, over a
generated wave of transfers (identical repeats among them) and format errors. However
many times each message is delivered again, on however many sessions, each is applied
exactly once and every delivery is answered (the redelivery rule: README
"Redeliveries"). Two drops in a row applied every transfer twice before the fix (a
redelivery kept no candidate of its own)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from smsgw.app import App
from smsgw.store.keys import redelivery_key
from tests.attacks import tried
from tests.test_attack_held import (
    RECIPIENT,
    SENDER,
    TRANSFER,
    funded,
    memory_of,
    outbox_of,
    routed,
    server,
)
from tests.test_attack_held import balance as held_balance
from tests.test_smpp_gateway import ALI, SARA, start_rig, stop_rig

__all__ = ["server"]  # the fixture, shared with test_attack_held

TEXTS = {"09351234567:1000:55555": 1000, "09351234567:1500:55555": 1500,
         "۰۹۳۵۱۲۳۴۵۶۷:۲۰۰۰:۵۵۵۵۵": 2000, "hello": 0}


@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lost=st.integers(1, 3),
       texts=st.lists(st.sampled_from(sorted(TEXTS)), min_size=1, max_size=4))
async def test_answers_lost_again_and_again_apply_each_message_once(
        redis_url: str, tmp_path: Path, lost: int, texts: list[str]) -> None:
    tried("nothing applied twice: answers lost in a row")
    redis.Redis.from_url(redis_url).flushdb()
    rig = await start_rig(redis_url, Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        rig.smsc.faults.ignore_deliver_resp = lost
        mos = [rig.smsc.inject_mo(ALI, "1112", text) for text in texts]
        for mo in mos:
            await rig.smsc.wait_answered(mo, timeout=40)
        await rig.gateway.settle()
        sent = sum(TEXTS[text] for text in texts)
        transfers = sum(1 for text in texts if TEXTS[text])
        assert await rig.balance(SARA) == sent
        assert await rig.balance(ALI) == 50_000 - sent - transfers * rig.app.settings.transfer.fee
        # a reply (or more: a redelivery's replies are sent again) per message to the
        # sender, and a notice per transfer to the recipient
        await rig.smsc.wait_mt(len(texts) + transfers, timeout=5)
    finally:
        await stop_rig(rig)


async def test_a_chain_of_redeliveries_on_new_sessions_applies_once(server: App) -> None:
    """The store's side: none of the answers confirmed, each delivery on a new session
    (as after each drop): the first is applied, every later one finds its outcome."""
    await funded(server)
    outbox, memory = outbox_of(server), memory_of(server)
    deliveries = [(await routed(server, outbox, memory, TRANSFER, session))[0]
                  for session in ("s1", "s2", "s3", "s4")]
    assert await held_balance(server, RECIPIENT) == 2500
    # the last delivery's answer is safe at last: nothing of the chain is left behind
    # (a left-over candidate would take the next deliberate repeat for a redelivery)
    last = deliveries[-1]
    confirm = memory.on_answer_safe(last)
    assert confirm is not None and last.redelivery is not None
    confirm()
    await memory.confirm()
    assert await server.store.redis.hlen(redelivery_key(SENDER, last.redelivery.digest)) == 0


async def test_two_binds_taking_turns_do_not_pass_an_outcome_back(server: App) -> None:
    """Two healthy binds (two gateways) take a sender's identical texts in turn, each
    before the last one's answer is confirmed: the second is taken for a redelivery of
    the first (the documented ambiguity), but the third, back on the first bind, is a
    new command: the outcome carried to bind b is not passed back to bind a, where it
    was decided (a run of repeats collapsed into one transfer)."""
    await funded(server)
    outbox, memory = outbox_of(server), memory_of(server)
    for session in ("a", "b", "a", "b"):
        await routed(server, outbox, memory, TRANSFER, session)
    assert await held_balance(server, RECIPIENT) == 5000
