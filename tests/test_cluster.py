"""Scale-out: the store on a real Redis Cluster, and journaled two-step transfers.

The journaled path is what a cluster needs (the sender's and the recipient's keys live in
different slots). It runs on the cluster, and in single-slot mode on a plain server and on
the embedded store, where `Store(single_slot=True)` refuses any script call that would
touch two slots, so a slip is caught without a cluster as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.crc import key_slot

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.core.clock import parse_timestamp
from smsgw.messages import Inbound, Outbound
from smsgw.store import CrossSlotCall, Store
from smsgw.store.keys import credited_key, journal_index_key, journal_key, subscriber_key
from smsgw.store.script import Script
from smsgw.store.shared import CONFIRM
from tests.conftest import CLUSTER_PREFIX, add_subscribers, make_settings

ALI = "989361111111"
SARA = "989351234567"
POST = "989391234567"
NOON = parse_timestamp("2026-07-23T12:00:00+03:30")
LATER = parse_timestamp("2026-07-23T12:05:00+03:30")


@pytest.fixture(params=["cluster", "redis-single-slot", "embedded-single-slot"])
async def journaled(request: pytest.FixtureRequest) -> AsyncIterator[App]:
    if request.param == "cluster":
        url = str(request.getfixturevalue("cluster_url"))
        app = build_app(make_settings(url))
    else:
        url = str(request.getfixturevalue("redis_url")) if request.param.startswith("redis") else ""
        app = build_app(make_settings(url), store=Store.connect(url, single_slot=True))
    assert app.store.single_slot
    await add_subscribers(app.store, (ALI, "prepaid", 20_000, 0), (SARA, "prepaid", 0, 0),
                          (POST, "postpaid", 0, 30_000))
    await app.store.redis.hset(subscriber_key(ALI), "pin", app.hasher.pin_digest(ALI, "55555"))
    yield app
    await app.close()


def wire_message(app: App, text: str, msg_id: str = "m1", at: Any = NOON) -> Inbound:
    return Inbound(ALI, "1112", text, at, msg_id=msg_id,
                   identity=app.hasher.message_identity("id", ALI, msg_id),
                   remember_seconds=3600)


async def balances(app: App) -> dict[str, tuple[str | None, str | None]]:
    found = {}
    for msisdn in (ALI, SARA, POST):
        fields = await app.store.redis.hmget(subscriber_key(msisdn), ["balance", "bill"])
        found[msisdn] = (fields[0], fields[1])
    return found


def crash_after_debit(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway dies right after the debit script returned: nothing more is done."""
    async def dead(sender: str, txid: str, entry: object = None) -> str:
        return "settled"

    async def nothing(sender: str, txid: str) -> None:
        return None
    monkeypatch.setattr(app.transfer, "complete", dead)
    monkeypatch.setattr(app.store, "unindex_journal", nothing)


def test_sender_and_recipient_are_in_different_slots() -> None:
    # the premise of the tests below: their transfer really crosses two slots
    assert key_slot(subscriber_key(ALI).encode()) != key_slot(subscriber_key(SARA).encode())
    assert key_slot(subscriber_key(ALI).encode()) != key_slot(subscriber_key(POST).encode())
    assert key_slot(journal_key(ALI).encode()) == key_slot(subscriber_key(ALI).encode())


async def test_a_transfer_across_slots_is_applied_and_settled(journaled: App) -> None:
    app = journaled
    before = await app.store.money()
    replies: list[Outbound] = await app.router.handle(wire_message(app, "09351234567:2000:55555"))
    assert [r.kind for r in replies] == ["transfer.sent", "transfer.received_prepaid"]
    assert await balances(app) == {ALI: ("17500", "0"), SARA: ("2000", "0"), POST: ("0", "30000")}
    assert await app.store.journal_entries(ALI) == {}
    assert await app.store.money() == before
    postpaid = await app.router.handle(wire_message(app, "09391234567:3000:55555", "m2"))
    assert [r.kind for r in postpaid] == ["transfer.sent", "transfer.received_postpaid"]
    assert (await balances(app))[POST] == ("0", "27000")
    assert [e["kind"] for e in await app.store.history(SARA)] == ["transfer_in", "loaded"]


async def test_a_crash_between_debit_and_credit_is_completed_by_recovery(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app = journaled
    before = await app.store.money()
    message = wire_message(app, "09351234567:2000:55555")
    with monkeypatch.context() as patch:
        crash_after_debit(app, patch)
        await app.router.handle(message)
    assert (await balances(app))[ALI] == ("17500", "0")
    assert (await balances(app))[SARA] == ("0", "0")  # not credited yet
    assert len(await app.store.journal_entries(ALI)) == 1
    assert await app.store.money() == before  # the amount in flight is counted once

    assert (await app.transfer.recover(NOON))["young"] == 1  # left to its own gateway
    assert (await app.transfer.recover(LATER))["settled"] == 1
    assert await balances(app) == {ALI: ("17500", "0"), SARA: ("2000", "0"), POST: ("0", "30000")}
    assert await app.store.journal_entries(ALI) == {}
    assert await app.store.money() == before
    assert sum((await app.transfer.recover(LATER)).values()) == 0

    # the SMSC delivers the same message again: its first replies, nothing applied again
    again = await app.router.handle(message)
    assert [r.kind for r in again] == ["transfer.sent", "transfer.received_prepaid"]
    assert (await balances(app))[SARA] == ("2000", "0")
    assert await app.store.money() == before


async def test_a_redelivery_before_recovery_finishes_the_transfer_once(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app = journaled
    message = wire_message(app, "09351234567:2000:55555")
    with monkeypatch.context() as patch:
        crash_after_debit(app, patch)
        await app.router.handle(message)
    await app.router.handle(message)  # the redelivery completes it
    await app.router.handle(message)
    assert (await app.transfer.recover(LATER))["settled"] == 0
    assert await balances(app) == {ALI: ("17500", "0"), SARA: ("2000", "0"), POST: ("0", "30000")}


async def crash_between_credit_and_settlement(app: App,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A transfer whose gateway dies after the credit, before the settlement."""
    original = app.store.run

    async def die_at_settlement(script: Script[Any, Any, Any], keys: Any, args: Any) -> Any:
        if script.name == "transfer_settle":
            raise ConnectionResetError("the gateway died here")
        return await original(script, keys, args)

    with monkeypatch.context() as patch:
        patch.setattr(app.store, "run", die_at_settlement)
        with pytest.raises(ConnectionResetError):
            await app.router.handle(wire_message(app, "09351234567:2000:55555"))


async def test_a_crash_between_credit_and_settlement_credits_once(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app = journaled
    before = await app.store.money()
    store = app.store
    await crash_between_credit_and_settlement(app, monkeypatch)
    (txid,) = await store.journal_entries(ALI)
    assert await store.redis.zscore(credited_key(SARA), txid) is not None
    assert await store.money() == before  # credited, still journaled: counted once

    assert (await app.transfer.recover(LATER))["settled"] == 1
    assert await balances(app) == {ALI: ("17500", "0"), SARA: ("2000", "0"), POST: ("0", "30000")}
    assert await store.money() == before


async def test_a_transfer_whose_recipient_vanished_is_reversed(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app = journaled
    before_day = (await admin.show(app.store, ALI, NOON, app.settings.transfer))["sent_today"]
    with monkeypatch.context() as patch:
        crash_after_debit(app, patch)
        await app.router.handle(wire_message(app, "09351234567:2000:55555"))
    await app.store.redis.delete(subscriber_key(SARA))  # e.g. removed by hand meanwhile
    before = await app.store.money()
    assert (await app.transfer.recover(LATER))["reversed"] == 1
    shown = await admin.show(app.store, ALI, NOON, app.settings.transfer)
    assert shown["balance"] == 20_000  # amount and fee back
    assert shown["sent_today"] == before_day
    assert await app.store.money() == before
    assert (await app.store.history(ALI))[0]["kind"] == "transfer_reversed"
    # the SMSC delivers the message again: it learns of the reversal, and pays nothing
    again = await app.router.handle(wire_message(app, "09351234567:2000:55555"))
    assert [r.kind for r in again] == ["transfer.unknown_recipient"]
    assert (await admin.show(app.store, ALI, NOON, app.settings.transfer))["balance"] == 20_000


async def test_single_slot_mode_refuses_a_call_across_slots(redis_url: str) -> None:
    store = Store.connect(redis_url, single_slot=True)
    try:
        with pytest.raises(CrossSlotCall):
            await store.run(CONFIRM, [subscriber_key(ALI), subscriber_key(SARA)], ["a", "b"])
    finally:
        await store.close()


async def test_the_cluster_spreads_subscribers_over_its_nodes(cluster_url: str) -> None:
    app = build_app(make_settings(cluster_url))
    try:
        population = [f"98936{n:07d}" for n in range(300)]
        await add_subscribers(app.store, *((m, "prepaid", 1000, 0) for m in population))
        client = app.store.redis
        counts = [await node.execute_command("DBSIZE") for node in  # type: ignore[attr-defined]
                  [client.get_node(node_name=n.name) for n in client.get_primaries()]]  # type: ignore[attr-defined]
        assert len(counts) == 3 and all(count > 50 for count in counts)
        assert set(await app.store.all_subscribers()) == set(population)
    finally:
        await app.close()


def test_cluster_url_prefix_is_only_a_test_convention() -> None:
    settings = make_settings(CLUSTER_PREFIX + "redis://127.0.0.1:7000")
    assert settings.redis.cluster and settings.redis.url == "redis://127.0.0.1:7000"


# -- several gateways, each on its own bind, sharing the cluster ------------------------

async def start_gateway(url: str, smsc_port: int, delay: float, handled: list[str]) -> Any:
    import asyncio

    from smsgw.transport.gateway import Gateway
    from smsgw.transport.smpp.client import SmppClient

    settings = make_settings(url, smsc={"port": smsc_port, "order_across_binds": True,
                                        "reconnect_max_seconds": 0.3})
    app = build_app(settings)
    original = app.router.handle

    async def slow_handle(message: Inbound) -> list[Outbound]:
        handled.append(message.text)
        await asyncio.sleep(delay)  # one gateway is slower: without a shared order,
        return await original(message)  # the other one would overtake it

    app.router.handle = slow_handle  # type: ignore[method-assign]
    gateway = Gateway(app, SmppClient.from_settings(app.settings))
    task = asyncio.create_task(gateway.run())
    await gateway.client.wait_bound(10)
    return app, gateway, task


async def test_two_gateways_apply_one_subscribers_messages_in_order(cluster_url: str) -> None:
    import asyncio

    from smsgw.transport.smpp.fake_smsc import FakeSmsc

    async with FakeSmsc(redeliver_after=0.5) as smsc:
        handled: tuple[list[str], list[str]] = ([], [])
        gateways = [await start_gateway(cluster_url, smsc.port, delay, seen)
                    for delay, seen in zip((0.04, 0.0), handled, strict=True)]
        app = gateways[0][0]
        await add_subscribers(app.store, (ALI, "prepaid", 100_000, 0), (SARA, "prepaid", 0, 0))
        await app.store.redis.hset(subscriber_key(ALI), "pin",
                                   app.hasher.pin_digest(ALI, "55555"))
        amounts = [1000 + n for n in range(12)]
        sent = []
        for amount in amounts:
            sent.append(smsc.inject_mo(ALI, "1112", f"09351234567:{amount}:55555"))
            await asyncio.sleep(0.01)
        for mo in sent:
            await smsc.wait_answered(mo, timeout=20)
        for _, gateway, task in gateways:
            await gateway.stop(drain_timeout=5)
            await asyncio.wait_for(task, 10)
        history = await app.store.history(ALI)
        applied = [e["amount"] for e in reversed(history) if e["kind"] == "transfer_out"]
        for other, _, _ in gateways:
            await other.close()
    assert all(handled), "both gateways took part"
    assert applied == amounts


async def test_a_load_run_with_two_gateway_processes_on_the_cluster(cluster_url: str) -> None:
    """The README's scale-out recipe, short: two `smsgw run` processes, each on its own
    bind, one Redis Cluster, the full command mix."""
    from smsgw.testing.load import DEFAULT_MIX, LoadTestOptions, parse_mix, run_loadtest

    settings = make_settings(cluster_url)
    # a population large enough that the daily cap (50,000 rials, five to fifty
    # transfers) rarely meets a sender picked again and again, as in life
    options = LoadTestOptions(rate=150, duration=3, population=3000,
                              mix=parse_mix(DEFAULT_MIX), gateway="spawn", listen_port=0,
                              gateways=2)
    results = await run_loadtest(settings, options, say=lambda _: None)
    summary = results.as_json()
    assert summary["errors"] == {}
    assert summary["commands_completed"] == summary["mo_sent"] >= 440
    assert summary["money_conserved"] is True


def test_commands_refuse_a_cluster_node_without_the_cluster_setting(
        cluster_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from smsgw.commands.main import main

    node = cluster_url.removeprefix(CLUSTER_PREFIX)
    monkeypatch.delenv("SMSGW_REDIS_CLUSTER", raising=False)
    refused = CliRunner().invoke(main, ["admin", "recover", "--redis", node])
    assert refused.exit_code == 1 and "SMSGW_REDIS_CLUSTER=true" in refused.output
    monkeypatch.setenv("SMSGW_REDIS_CLUSTER", "true")
    done = CliRunner().invoke(main, ["admin", "recover", "--redis", node])
    assert done.exit_code == 0 and "nothing left half-done" in done.output


async def test_a_cluster_node_down_gives_temporary_errors_then_recovers(
        tmp_path: Any) -> None:
    """A node stops (its slots are down: the cluster answers CLUSTERDOWN) and comes back
    with its data: transfers meanwhile are refused as temporary, nothing half-done."""
    from smsgw.store import StoreUnavailable
    from tests.conftest import RedisCluster

    cluster = RedisCluster(tmp_path, durable=True)
    cluster.start()
    app = build_app(make_settings(CLUSTER_PREFIX + cluster.url))
    try:
        await add_subscribers(app.store, (ALI, "prepaid", 20_000, 0), (SARA, "prepaid", 0, 0))
        await app.store.redis.hset(subscriber_key(ALI), "pin",
                                   app.hasher.pin_digest(ALI, "55555"))
        before = await app.store.money()
        down = 1
        await asyncio.to_thread(cluster.stop_node, down)
        refused = 0
        for attempt in range(3):
            try:
                await app.router.handle(wire_message(app, "09351234567:2000:55555",
                                                       f"down-{attempt}"))
            except StoreUnavailable:
                refused += 1
        await asyncio.to_thread(cluster.start_node, down)
        await asyncio.to_thread(cluster.wait_ok)
        for _ in range(50):  # the client finds its way back to the node
            try:
                replies = await app.router.handle(wire_message(app, "09351234567:2000:55555",
                                                                 "after"))
                break
            except StoreUnavailable:
                await asyncio.sleep(0.2)
        assert refused == 3
        assert [r.kind for r in replies] == ["transfer.sent", "transfer.received_prepaid"]
        assert await app.store.journal_entries(ALI) == {}
        assert await app.store.money() == before
        assert (await balances(app))[SARA] == ("2000", "0")  # only the one after recovery
    finally:
        await app.close()
        await asyncio.to_thread(cluster.stop)


async def test_recovery_finds_half_done_transfers_by_the_index_without_scanning(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app = journaled
    await app.router.handle(wire_message(app, "09351234567:2000:55555", "done"))
    await app.router.handle(wire_message(app, "09351234567:999:55555", "refused"))
    assert await app.store.indexed_journals(2**62) == ([], 0)  # finished: nothing left
    with monkeypatch.context() as patch:
        crash_after_debit(app, patch)
        await app.router.handle(wire_message(app, "09351234567:1000:55555", "crashed"))

    async def no_scan() -> list[str]:
        raise AssertionError("the minutely recovery must not scan the keyspace")
    monkeypatch.setattr(app.store, "journal_senders", no_scan)
    assert await app.transfer.recover(LATER) == {"settled": 1, "young": 0}
    assert (await balances(app))[SARA] == ("3000", "0")
    assert await app.store.indexed_journals(2**62) == ([], 0)


async def test_a_full_recovery_finds_journals_the_index_does_not_know(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Journals written before the index existed: the scan at a gateway's start, and
    `smsgw admin recover`, still finish them."""
    app = journaled
    with monkeypatch.context() as patch:
        crash_after_debit(app, patch)
        await app.router.handle(wire_message(app, "09351234567:2000:55555"))
    await app.store.redis.delete(journal_index_key(ALI))
    assert (await app.transfer.recover(LATER))["settled"] == 0
    assert (await app.transfer.recover(LATER, full=True))["settled"] == 1
    assert (await balances(app))[SARA] == ("2000", "0")


async def test_a_transfer_left_unsettled_past_the_credit_memory_is_never_credited_twice(
        journaled: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The credit went through, then the sender's node stayed down longer than the
    recipient remembers credited ids (an hour): recovery must not credit it again (money
    would be created); it leaves the transfer in the journal, counted as in flight."""
    import orjson

    app = journaled
    store = app.store
    await crash_between_credit_and_settlement(app, monkeypatch)
    (txid, entry), = (await store.journal_entries(ALI)).items()
    # two hours pass: the recipient's memory of the credit lapses (as its own pruning does)
    await store.redis.zrem(credited_key(SARA), txid)
    aged = {**entry, "debited_at": int(entry["debited_at"]) - 7200}
    await store.redis.hset(journal_key(ALI), txid, orjson.dumps(aged).decode())

    counts = await app.transfer.recover(LATER)
    assert counts["settled"] == 0 and counts["stuck"] == 1
    assert (await balances(app))[SARA] == ("2000", "0")  # credited once, not twice
    assert len(await store.journal_entries(ALI)) == 1  # left for care staff


async def test_a_recipient_with_an_empty_balance_is_refused_alike_in_both_steps(
        journaled: App) -> None:
    """A hand-edited empty balance: the debit step must refuse it exactly as the credit
    step would, or the sender is debited and then reversed (found by the money property
    test on the cluster)."""
    app = journaled
    await app.store.redis.hset(subscriber_key(SARA), "balance", "")
    before = await balances(app)
    history = await app.store.redis.lrange(f"s:{{{ALI}}}:h", 0, -1)
    replies = await app.router.handle(wire_message(app, "09351234567:2000:55555"))
    assert [reply.kind for reply in replies] == ["transfer.recipient_limit"]
    assert await balances(app) == before
    assert await app.store.redis.lrange(f"s:{{{ALI}}}:h", 0, -1) == history
    assert await app.store.journal_entries(ALI) == {}


async def test_calls_go_straight_to_their_nodes_and_a_redirection_is_followed(
        cluster_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Script calls travel on one connection per node (not redis-py's cluster pipeline);
    a node that answers MOVED (a slot map gone stale: a resharding, a failover) did not
    run the call: it goes again through redis-py, which follows the redirection, and runs
    exactly once."""
    from smsgw.store import node_pipes

    store = Store.connect(cluster_url.removeprefix(CLUSTER_PREFIX), cluster=True)
    try:
        await store.load_scripts()
        key = "s:{989361111111}:r:x"
        await store.run(CONFIRM, [key], ["f"])
        nodes = store._batcher._nodes
        assert nodes is not None and nodes._pipes  # written per node
        manager = store.redis.nodes_manager  # type: ignore[attr-defined]
        owner = manager.get_node_from_slot(key_slot(key.encode()))
        stranger = next(n for n in store.redis.get_primaries()  # type: ignore[attr-defined]
                        if n.name != owner.name)

        class StaleMap:  # the node pipes' view only; redis-py keeps its own, right map
            def get_node_from_slot(self, *_: object) -> object:
                return stranger

        class StaleCluster:
            nodes_manager = StaleMap()

        monkeypatch.setattr(nodes, "_cluster", StaleCluster())
        await store.run(CONFIRM, [key], ["f"])  # through redis-py: not connected to the
        await asyncio.sleep(0.5)  # ... stranger yet; now it is
        await store.redis.hset(key, "f", "1")
        answers: list[object] = []
        real = node_pipes.is_redirect

        def seen(answer: object) -> bool:
            answers.append(answer)
            return real(answer)

        monkeypatch.setattr("smsgw.store.batcher.is_redirect", seen)
        await store.run(CONFIRM, [key], ["f"])
        assert any(real(answer) for answer in answers)  # the stranger said MOVED ...
        assert not await store.redis.hexists(key, "f")  # ... and the owner ran it
    finally:
        await store.close()


def test_a_clusters_ports_never_take_each_others_bus_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Chosen one by one, a node's port was once the bus port (port + 10000) of another:
    that node could not start, and every cluster test of the CI run failed."""
    from smsgw import testing

    offered = iter([42951, 52951, 42951, 32951, 43100, 44000])  # 32951's bus: 42951
    monkeypatch.setattr(testing, "free_cluster_port", lambda: next(offered))
    ports = testing.cluster_ports(3)
    assert ports == [42951, 43100, 44000]
    used = ports + [port + 10000 for port in ports]
    assert len(set(used)) == len(used)
