"""Script objects: the Python tuple alone decides the order of keys and arguments; the Lua
reads them by name, and a name the tuple lacks is an error, not a nil."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from smsgw.core.money import MONEY_CEILING
from smsgw.store import HISTORY_LENGTH, Store, SubscriberRow
from smsgw.store.script import Script
from tests.attacks import tried


class ProbeKeys(NamedTuple):
    second: str  # declared first: sent as KEYS[1]
    first: str


class ProbeArgs(NamedTuple):
    number: int
    word: str
    ask_missing: int = 0


PROBE = Script(Path(__file__).with_name("lua") / "probe_names.lua", ProbeKeys, ProbeArgs,
               list[Any])


async def test_keys_and_arguments_are_read_by_name(store_url: str) -> None:
    store = Store.connect(store_url)
    try:
        answer = await store.run(PROBE, ProbeKeys(second="s:{1}:b", first="s:{1}:a"),
                                 ProbeArgs(number=7, word="متن"))
        assert answer == ["s:{1}:a", "s:{1}:b", "متن", "7", str(MONEY_CEILING),
                          str(HISTORY_LENGTH)]
        with pytest.raises(ResponseError, match="no key or argument named missing"):
            await store.run(PROBE, ProbeKeys("s:{1}:b", "s:{1}:a"), ProbeArgs(7, "w", 1))
    finally:
        await store.close()


def test_a_lua_keyword_is_no_name(tmp_path: Path) -> None:
    class Bad(NamedTuple):
        end: str

    (tmp_path / "bad_name.lua").write_text("return 1")
    with pytest.raises(ValueError, match="Lua keyword"):
        Script(tmp_path / "bad_name.lua", Bad, list[str], int)


async def test_a_history_keeps_the_newest_entries_and_no_more(store_url: str) -> None:
    """The scripts trim a history only once it is nearly full: it never grows past
    HISTORY_LENGTH, and the entries kept are the newest."""
    store = Store.connect(store_url)
    msisdn = "989350000777"
    try:
        await store.upsert_subscribers(
            [SubscriberRow(msisdn, "prepaid", 0, 0, "fa")], replace=False, at="2026-12-01")
        for number in range(HISTORY_LENGTH + 25):
            answer = await store.care_action(msisdn, "topup", f"t{number:05d}", 1)
            assert answer["status"] == "ok"
        history = await store.history(msisdn)
        assert len(history) == HISTORY_LENGTH
        assert history[0]["at"] == f"t{HISTORY_LENGTH + 24:05d}"
        assert history[-1]["at"] == "t00025"
    finally:
        await store.redis.delete(f"s:{{{msisdn}}}", f"s:{{{msisdn}}}:h")
        await store.close()


class HistoryKeys(NamedTuple):
    history: str


class RecordArgs(NamedTuple):
    count: int
    at: str


class KeyArgs(NamedTuple):
    key: str


RECORD_MANY = Script(Path(__file__).with_name("lua") / "record_many.lua", HistoryKeys,
                     RecordArgs, int)
KEYS_JSON = Script(Path(__file__).with_name("lua") / "keys_json.lua", list, KeyArgs, list)


@pytest.mark.parametrize("count", [1, 9, 10, 40])
async def test_many_entries_in_one_call_still_keep_the_history_bounded(
        store_url: str, count: int) -> None:
    """A call that records several entries into one nearly full list (found by the
    review: the length read before the queued pushes let 1,011 entries stand)."""
    store = Store.connect(store_url)
    key = "s:{989350000888}:h"
    try:
        await store.redis.lpush(key, *[f"old{n}" for n in range(HISTORY_LENGTH - 9)])
        assert await store.run(RECORD_MANY, HistoryKeys(key), RecordArgs(count, "t")) == min(
            HISTORY_LENGTH, HISTORY_LENGTH - 9 + count)
        newest = orjson.loads(await store.redis.lindex(key, 0))
        assert newest["n"] == count
    finally:
        await store.redis.delete(key)
        await store.close()


@pytest.mark.parametrize("key", ["status", "_a1", "a-b", 'q"x', "ä", "é", "1a", "a b", "a\\b",
                                 "\u00e9t\u00e9", "k\x00", "\u200f"])
async def test_to_json_writes_any_key_as_valid_json(store_url: str, key: str) -> None:
    store = Store.connect(store_url)
    try:
        ours, _ = await store.run(KEYS_JSON, [], KeyArgs(key))
        text = ours.decode() if isinstance(ours, bytes) else ours
        assert orjson.loads(text) == {key: 1} == json.loads(text)
    finally:
        await store.close()


VALUES_JSON = Script(Path(__file__).with_name("lua") / "values_json.lua", list, list, str)
# whole numbers across the bound below which one cjson call writes them exactly (10^14),
# up to the money ceiling
_WHOLE = st.one_of(st.integers(-MONEY_CEILING, MONEY_CEILING),
                   st.integers(10**14 - 3, 10**14 + 3), st.integers(-10**14 - 3, -10**14 + 3))
_VALUE = st.one_of(_WHOLE, st.text(max_size=20), st.booleans())


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None,
          max_examples=60)
@given(record=st.dictionaries(st.text(min_size=1, max_size=8), _VALUE, max_size=14))
def test_any_record_reads_back_exactly_from_its_json(store_url: str,
                                                     record: dict[str, Any]) -> None:
    """Generated: any flat record (outcomes, history and journal entries are such) of
    whole numbers up to the ceiling, texts and booleans, through one cjson call or field
    by field: its JSON reads back as the same values, every digit of every number."""
    tried("a record's JSON: every value exact")
    assert orjson.loads(asyncio.run(_values_json(store_url, record))) == record


def test_a_lowered_cjson_precision_rounds_no_money(redis_url: str) -> None:
    """cjson's number precision is one setting of the server, for every script: another
    client lowering it must not round what our scripts write (found by the review)."""
    sync = redis.Redis.from_url(redis_url)
    try:
        sync.eval("cjson.encode_number_precision(3) return 1", 0)
        assert orjson.loads(asyncio.run(_values_json(redis_url, {"a": 1099511627776}))) == {
            "a": 1099511627776}
    finally:
        sync.eval("cjson.encode_number_precision(14) return 1", 0)
        sync.close()


async def _values_json(store_url: str, record: dict[str, Any]) -> Any:
    """The record as values_json.lua builds it (numbers, texts, booleans) and to_json
    writes it."""
    fields: list[str] = []
    for key, value in record.items():
        kind = "b" if isinstance(value, bool) else "n" if isinstance(value, int) else "s"
        fields += [key, kind, str(int(value)) if kind == "b" else str(value)]
    store = Store.connect(store_url)
    try:
        return await store.run(VALUES_JSON, [], [len(record), *fields])
    finally:
        await store.close()


class HostileArgs(NamedTuple):
    count: int
    key: str
    value: str
    at: str


RECORD_HOSTILE = Script(Path(__file__).with_name("lua") / "record_hostile.lua", HistoryKeys,
                        HostileArgs, list)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(start=st.integers(0, HISTORY_LENGTH + 5), count=st.integers(1, 30),
       key=st.text(min_size=1, max_size=12).filter(lambda k: k != "at"), value=st.text(max_size=40))
def test_any_entries_recorded_keep_the_history_bounded_and_valid_json(
        redis_url: str, start: int, count: int, key: str, value: str) -> None:
    """Generated: a list at any length, any number of entries in one call, any key and
    value (quotes, control characters, RTL marks, digits first): the list never passes
    HISTORY_LENGTH, keeps the newest, and each entry reads back as the same JSON."""
    tried("a history: bounded, newest kept, every entry valid JSON")
    history = "s:{989350000999}:h"
    sync = redis.Redis.from_url(redis_url)
    sync.delete(history)
    if start:
        sync.lpush(history, *[f"old{n}" for n in range(start)])

    async def run() -> list[Any]:
        store = Store.connect(redis_url)
        try:
            return list(await store.run(RECORD_HOSTILE, HistoryKeys(history),
                                        HostileArgs(count, key, value, "t")))
        finally:
            await store.close()

    try:
        length, newest = asyncio.run(run())
        assert length == min(HISTORY_LENGTH, start + count)
        text = newest.decode() if isinstance(newest, bytes) else newest
        assert orjson.loads(text) == json.loads(text) == {key: value, "at": "t"}
    finally:
        sync.delete(history)
