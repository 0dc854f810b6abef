"""Concatenated messages: their parts kept in the store until the whole is applied.

Commands are short, so a message of more parts than MAX_PARTS, or a part longer than an
SMS can carry (a message_payload TLV in a part), is no command; one sender may have
MAX_OPEN_MESSAGES_PER_SENDER incomplete at once (each part names its total: so at most
MAX_PARTS parts each); a message's parts wait for the rest a fixed time after its first
part (the redelivery window, at least MIN_PARTS_TTL_SECONDS), then expire.
"""

from __future__ import annotations

import itertools

from smsgw.core.hashing import Hasher
from smsgw.observability.logs import get_logger
from smsgw.store import Assembly, PartLimits, Store, StoreUnavailable
from smsgw.transport.smpp.client import WireMessage
from smsgw.transport.smpp.pdu import ESME_ROK, ESME_RX_P_APPN

log = get_logger("smsgw.transport.reassembly")
MAX_PARTS = 32
MAX_PART_CHARACTERS = 160
MAX_OPEN_MESSAGES_PER_SENDER = 8
MIN_PARTS_TTL_SECONDS = 60
# What to answer a part that is not (yet) a whole message
PART_STATUSES = {"partial": ESME_ROK, "too_long": ESME_RX_P_APPN,
                 "too_many": ESME_RX_P_APPN, "total_changed": ESME_RX_P_APPN,
                 "unreadable": ESME_RX_P_APPN}
SEAL_LABEL = "part"


def _seal_label(sender: str, key: str, number: int) -> str:
    """A part's seal names its sender, message and place: a sealed part written back into
    another place, or another sender's message, by whoever can write to Redis, does not
    open (the whole is "unreadable"), so no one can splice a text together."""
    return f"{SEAL_LABEL}\x1f{sender}\x1f{key}\x1f{number}"


def _parts_key(message: WireMessage) -> str:
    """One concatenated message of a sender: its short code and reference number."""
    assert message.part is not None
    return f"{message.destination}:{message.part[0]}"


class Reassembly:
    """Each part is sealed with the hash key while it waits (core/hashing.py): a command
    sent in parts holds a PIN, and the store keeps no PIN in clear."""

    def __init__(self, store: Store, hasher: Hasher, window_seconds: int) -> None:
        self._store = store
        self._hasher = hasher
        self._limits = PartLimits(max(window_seconds, MIN_PARTS_TTL_SECONDS),
                                  MAX_OPEN_MESSAGES_PER_SENDER)
        self._counter = itertools.count(1)

    async def add(self, message: WireMessage, sender: str, session: str) -> Assembly:
        """A whole message at once; a part kept until the rest is in ("whole" then, with
        the id the message got at its first part); or a part refused for good.
        Raises StoreUnavailable."""
        if message.part is None:
            return Assembly("whole", message.text)
        _, number, total = message.part
        if total > MAX_PARTS or len(message.text) > MAX_PART_CHARACTERS:
            return Assembly("too_long")
        key = _parts_key(message)
        return await self._store.add_part(
            sender, key, number, total,
            self._hasher.seal(_seal_label(sender, key, number), message.text), self._limits,
            f"{session}-p{next(self._counter)}",
            lambda place, sealed: self._hasher.unseal(_seal_label(sender, key, place), sealed))

    async def forget(self, message: WireMessage, sender: str) -> None:
        """After the command is applied (its outcome stored under the message's id, so a
        part delivered again meanwhile applies nothing twice). If this fails, the parts
        expire by themselves."""
        if message.part is None:
            return
        try:
            await self._store.forget_parts(sender, _parts_key(message))
        except StoreUnavailable as exc:
            log.warning("cannot drop the parts of an applied message: they will expire",
                        error=str(exc))
