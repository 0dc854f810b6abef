"""Script objects: the Python tuple alone decides the order of keys and arguments; the Lua
reads them by name, and a name the tuple lacks is an error, not a nil."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
from redis.exceptions import ResponseError

from smsgw.core.money import MONEY_CEILING
from smsgw.store import HISTORY_LENGTH, Store
from smsgw.store.script import Script


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
