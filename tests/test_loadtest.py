"""The load test as engineers run it: short, on loopback, numbers and money check present."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from smsgw.app import build_app
from smsgw.commands.main import main
from smsgw.testing.load import LoadTestOptions, parse_mix, run_loadtest
from smsgw.transport.gateway import Gateway
from smsgw.transport.smpp.client import SmppClient
from smsgw.transport.smpp.fake_smsc import FakeSmsc
from tests.conftest import make_settings


def test_loadtest_command_reports_throughput_latency_and_money(tmp_path: Path,
                                                               monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SMSGW_SECURITY_HASH_KEY", "k" * 32)
    out = tmp_path / "result.json"
    result = CliRunner().invoke(main, ["loadtest", "--rate", "150", "--duration", "2",
                                       "--population", "2000", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert 290 <= data["mo_sent"] <= 300 and data["errors"] == {}
    assert data["commands_completed"] == data["mo_sent"]
    assert data["mt_received"] > data["mo_sent"]  # transfers are answered twice
    assert set(data["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert data["money_conserved"] is True
    # conservation alone also holds for a gateway that moves nothing: the fees rose by
    # the fee of every transfer confirmed
    assert data["confirmed_transfers"] > 0 and data["fees_as_confirmed"] is True
    assert set(data["sent_by_kind"]) <= {"transfer", "wrong_pin", "bad_format", "limit",
                                         "pin_change", "otp", "enquiry"}


def test_the_load_tests_kinds_come_from_the_services_registry() -> None:
    """Every service's declared kinds of traffic can be mixed in, and nothing else."""
    from smsgw.services.registry import plugins

    declared = {kind for plugin in plugins() for kind in plugin.load_kinds}
    assert {"transfer", "otp", "enquiry"} <= declared
    assert set(parse_mix(",".join(f"{kind}=1" for kind in declared))) == declared


def test_loadtest_rejects_a_bad_mix_and_remote_targets() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["loadtest", "--mix", "teleport=5"]).exit_code == 2
    bad = runner.invoke(main, ["loadtest", "--smsc", "10.1.2.3:2775"])
    assert bad.exit_code == 2 and "loopback" in bad.output


async def test_driving_a_running_fake_smsc_through_a_driver_bind(redis_url: str) -> None:
    settings = make_settings(redis_url)
    async with FakeSmsc(redeliver_after=0.5) as smsc:  # as `smsgw fake-smsc` would run
        app = build_app(settings.model_copy(update={"smsc": settings.smsc.model_copy(
            update={"port": smsc.port})}))
        gateway = Gateway(app, SmppClient.from_settings(app.settings))
        import asyncio

        running = asyncio.create_task(gateway.run())
        await gateway.client.wait_bound(10)
        try:
            options = LoadTestOptions(100, 2, 2000, parse_mix("transfer=90,bad_format=10"),
                                      "external", 0, smsc=("127.0.0.1", smsc.port))
            results = (await run_loadtest(settings, options)).as_json()
        finally:
            await gateway.stop()
            await running
            await app.close()
    assert 190 <= results["mo_sent"] <= 200
    assert results["commands_completed"] == results["mo_sent"]
    assert results["errors"] == {} and results["money_conserved"] is True


def test_an_overloaded_run_says_so_and_counts_money_only_once_drained(
        redis_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The driver stops waiting at once (no drain), so commands are still in flight when
    it ends: the run is reported as overloaded, and the money check, made after the
    gateway has drained, still finds every rial."""
    import asyncio

    from smsgw.testing import load as loadtest

    monkeypatch.setattr(loadtest, "DRAIN_SECONDS", 0.0)
    settings = make_settings(redis_url)
    options = LoadTestOptions(4000, 1.5, 5000, parse_mix("transfer=100"), "spawn", 0)
    results = asyncio.run(run_loadtest(settings, options, say=lambda _: None)).as_json()
    assert results["errors"].get("unanswered", 0) > 0
    assert results["overloaded"] is True
    assert results["money_conserved"] is True


def test_synthetic_traffic_is_as_varied_as_real_traffic() -> None:
    """Every transfer text different (recipients, amounts, PINs and the way numbers and
    digits are written vary), and each one still says what the driver meant."""
    import random

    from smsgw.services.transfer.parse import Transfer, parse_transfer_command
    from smsgw.testing.load import Population, Traffic, synthetic

    people = [synthetic(i) for i in range(50_000)]
    traffic = Traffic(Population(people, people[:10], people[:10]), random.Random(7))
    commands = [traffic.command("transfer") for _ in range(20_000)]
    texts = [command.text for command in commands]
    assert len(set(texts)) >= 0.999 * len(texts)
    assert any("۰" in text for text in texts) and any(" : " in text for text in texts)
    for command in commands[:3000]:
        parsed = parse_transfer_command(command.text)
        assert isinstance(parsed, Transfer), command.text
        assert parsed.recipient == command.recipient
        assert parsed.pin == traffic.pin(command.sender)
        assert 1000 <= parsed.amount <= 10_000


def test_a_refused_transfer_is_an_error_of_the_run_not_an_answer(redis_url: str) -> None:
    """A transfer the driver meant to go through, refused (here by a tiny daily cap), is a
    cheaper command than one applied: a run that counted it as answered would measure
    less work than it offered. It is counted as an error; the fees still match exactly
    the transfers confirmed."""
    import asyncio

    settings = make_settings(redis_url, transfer={"daily_cap": 2000})
    options = LoadTestOptions(200, 1.5, 60, parse_mix("transfer=100"), "inprocess", 0)
    results = asyncio.run(run_loadtest(settings, options, say=lambda _: None)).as_json()
    assert results["errors"].get("transfer_refused_by_cap", 0) > 0
    assert 0 < results["confirmed_transfers"] < results["mo_sent"]
    assert results["money_conserved"] is True and results["fees_as_confirmed"] is True


def test_a_new_population_starts_without_earlier_runs_sums(redis_url: str) -> None:
    """Sums of the day and month that an earlier, larger run left for its subscribers
    (beyond the first 10,000 too) are gone before the next run: left over, they refused a
    growing share of a later run's transfers under the caps. Numbers outside the
    synthetic range are not touched."""
    import asyncio

    from smsgw.testing.load import prepare_population, synthetic

    async def leftovers() -> tuple[list[str], bool]:
        app = build_app(make_settings(redis_url))
        try:
            stale = [f"s:{{{synthetic(i)}}}:d:20261201" for i in (0, 9_999, 10_000, 54_321)]
            # another number, and one just past the run's range (the pattern's prefix
            # matches it): neither is the run's to remove
            others = ["s:{989121234567}:d:20261201", f"s:{{{synthetic(60_000)}}}:d:20261201"]
            for key in [*stale, *others]:
                await app.store.redis.set(key, 47_000)
            await prepare_population(app.store, app.hasher, 60_000, {"transfer": 1.0})
            left = [key for key in stale if await app.store.redis.exists(key)]
            kept = all([await app.store.redis.exists(key) for key in others])
            await app.store.redis.delete(*others)
            return left, kept
        finally:
            await app.close()

    left, kept = asyncio.run(leftovers())
    assert left == [] and kept


def test_arrivals_come_in_bursts_as_real_ones_do() -> None:
    """The driver's arrivals are a Poisson process: the offered rate on average, but the
    count per 5 ms tick varies as a Poisson count does (an even stream, whose count per
    tick barely varies, queues less and flatters the p99)."""
    import random
    import statistics

    from smsgw.testing.load import Arrivals

    arrivals = Arrivals(2000.0, random.Random(3))
    counts = [len(arrivals.due(tick * 0.005)) for tick in range(1, 4001)]  # 20 s
    mean = statistics.fmean(counts)
    assert abs(sum(counts) - 40_000) < 4 * 40_000 ** 0.5
    assert 0.8 * mean < statistics.pvariance(counts) < 1.2 * mean


def test_a_refusal_that_names_the_fee_is_no_confirmation() -> None:
    """The Persian "not enough credit" refusal names the fee (کارمزد) as the confirmation
    does: the driver must not count it as a transfer done (and then wait for the
    recipient's confirmation that never comes)."""
    from smsgw.services.transfer.service import TEMPLATES
    from smsgw.testing.load import Results, Tracker
    from smsgw.transport.smpp.fake_smsc import Mt

    for language in ("fa", "en"):
        refusal = TEMPLATES.render(language, "transfer", "insufficient", balance="1,000",
                                   needed="10,500", fee="500")
        tracker = Tracker(Results(offered_rate=1, duration=1))
        tracker.sent("989369000001", "transfer", recipient="989369000002")
        tracker.on_mt(Mt(["m1"], "1112", "989369000001", refusal, "ucs2", 1, 0, 0.0))
        assert tracker.results.errors["transfer_refused"] == 1, language
        assert tracker.results.confirmed_transfers == 0 and tracker.results.completed == 1


def test_latency_counts_from_when_a_command_was_due() -> None:
    """A driver that sends a command late (its tick came late) must not hide the wait:
    the latency runs from when the command was due."""
    import time

    from smsgw.testing.load import Results, Tracker
    from smsgw.transport.smpp.fake_smsc import Mt

    tracker = Tracker(Results(offered_rate=1, duration=1))
    due = time.monotonic() - 0.5
    tracker.sent("989369000001", "bad_format", at=due)
    tracker.on_mt(Mt(["m1"], "1112", "989369000001", "bad format", "gsm", 1, 0, due + 0.5))
    assert tracker.results.percentile(0.99) >= 499.0


def test_the_p99_of_each_second_shows_when_a_stall_came() -> None:
    """A run's one p99 hides whether latency grew all along (overload) or spiked once (a
    stall): the JSON gives the p99 of each second, by when the commands were due."""
    from smsgw.testing.load import Results, Tracker
    from smsgw.transport.smpp.fake_smsc import Mt

    results = Results(offered_rate=1, duration=4, started=1000.0)
    tracker = Tracker(results)
    for index, (due, latency) in enumerate([(0.2, 0.010), (0.7, 0.012), (2.5, 0.400),
                                            (3.1, 0.011)]):
        sender = f"98936900000{index}"
        tracker.sent(sender, "bad_format", at=1000.0 + due)
        tracker.on_mt(Mt([f"m{index}"], "1112", sender, "bad format", "gsm", 1, 0,
                         1000.0 + due + latency))
    assert results.as_json()["p99_ms_by_second"] == [12.0, None, 400.0, 11.0]


def test_the_driver_keeps_nothing_of_an_answered_subscriber() -> None:
    """Each sender answered leaves no queue behind in the driver: a minute of traffic over
    100,000 subscribers left 62,000 empty queues, which the driver's full garbage
    collections walked (pauses of up to 42 ms, counted as the gateway's latency). A
    sender who texts again is still matched."""
    from smsgw.testing.load import Results, Tracker
    from smsgw.transport.smpp.fake_smsc import Mt

    tracker = Tracker(Results(offered_rate=1, duration=1))
    for round_ in range(2):
        for index in range(50):
            sender = f"98936900{index:04d}"
            tracker.sent(sender, "bad_format")
            tracker.on_mt(Mt([f"m{round_}-{index}"], "1112", sender, "bad format", "gsm", 1,
                             0, 0.0))
    assert tracker.results.completed == 100 and not tracker.results.errors
    assert tracker.unanswered() == 0 and not tracker.pending


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=60))
def test_any_order_of_texts_and_replies_is_counted_truthfully(steps: list[tuple[int, bool]]
                                                              ) -> None:
    """Generated traffic: each step a sender texting (False) or getting a reply (True),
    senders texting again before, after or without a reply, replies to no one. Against a
    plain count per sender: every reply to a waiting sender completes its oldest command
    once, any other is unmatched, what is left waiting is unanswered, and the driver keeps
    a queue only for a sender still waiting."""
    from smsgw.testing.load import Results, Tracker
    from smsgw.transport.smpp.fake_smsc import Mt

    tracker = Tracker(Results(offered_rate=1, duration=1))
    waiting = [0] * 6
    completed = unmatched = 0
    for index, (who, is_reply) in enumerate(steps):
        sender = f"98936900000{who}"
        if not is_reply:
            tracker.sent(sender, "bad_format")
            waiting[who] += 1
            continue
        tracker.on_mt(Mt([f"m{index}"], "1112", sender, "bad format", "gsm", 1, 0, 0.0))
        if waiting[who]:
            waiting[who] -= 1
            completed += 1
        else:
            unmatched += 1
    assert tracker.results.completed == completed
    assert tracker.results.errors["unmatched_mt"] == unmatched
    assert tracker.unanswered() == tracker.outstanding == sum(waiting)
    assert set(tracker.pending) == {f"98936900000{who}" for who, n in enumerate(waiting) if n}


@given(size=st.integers(1, 1_000_000), index=st.integers(0, 2_000_000),
       tail=st.sampled_from(["", ":d:20261201", ":m:J1405-09", ":h"]))
def test_the_cleanup_removes_only_the_runs_own_subscribers(size: int, index: int,
                                                             tail: str) -> None:
    """Every key of a subscriber the run uses is found by the scan and removed; a key of
    any other synthetic number, past the range, is not."""
    from fnmatch import fnmatchcase

    from smsgw.testing.load import in_population, population_pattern, synthetic

    key = f"s:{{{synthetic(index)}}}{tail}"
    assert in_population(key, size) == (index < size)
    if index < size:
        assert fnmatchcase(key, population_pattern(size))


@given(key=st.text(max_size=40) | st.binary(max_size=40).map(lambda raw: b"s:{" + raw)
       | st.text("0123456789٠١٢٣۰۱۲۳}", max_size=16).map(lambda digits: f"s:{{98936{digits}}}"))
def test_the_cleanup_never_takes_a_key_that_names_no_synthetic_number(key: str | bytes) -> None:
    """Generated keys (any text, any bytes after `s:{`) are never taken for one of the
    run's subscribers unless they name one."""
    from smsgw.testing.load import POPULATION_BASE, in_population

    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    number = text[3:text.find("}")] if text.startswith("s:{") else ""
    if in_population(key, 1_000_000):
        assert number.startswith("98") and number.isascii() and number[2:].isdigit()
        assert 0 <= int(number[2:]) - POPULATION_BASE < 1_000_000
