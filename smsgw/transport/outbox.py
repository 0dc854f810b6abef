"""The outbox (interfaces.md, "Replies that must not be lost"): every reply is durable in
the store before the deliver_sm it answers is acknowledged, and stays until the SMSC took
it (submit_sm_resp OK) or refused it for good.

- `hold`: the replies of one message in one script call (store/outbox.py), after the
  router decided them and before the gateway answers ESME_ROK; a store failure makes that
  answer a temporary error (the redelivery machinery re-renders the same outcome).
- `finished` (a done-callback of each submit): queues the reply's removal; removals go in
  batches (`flush`, every CONFIRM_BATCH_SECONDS). A refusal for good, or an expiry, is
  also recorded in the recipient's history.
- A gateway owns what it holds under a lease it renews (workers/outbox.py); a gateway
  that stops renewing (killed, cut off) has its replies taken over by another, or by its
  own successor, once the lease has run out. A graceful stop ends the lease at once.
- Not too late: an OTP reply is not sent past its validity ([otp] ttl_seconds), nor any
  reply older than [outbox] max_age_seconds (the submit carries that deadline).

An OTP is kept sealed (core/hashing.py), never in clear; the rest of the text is stored
as the message log would show it plus the sealed secret.

Held with the command (one server): a message whose service can render its replies again
from a command's outcome (`replies_for`) gets a row before routing (`slot`); its command
script writes the row itself, the outcome in it, in the same atomic call that decides it
(store/script.py's envelope), so the replies cost no second store call. The row keeps
the message as the log shows it (PIN tokens, no PIN) and the outcome; a successor renders
the replies again from them. It leaves the outbox once all of its replies are taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from smsgw.config import Settings
from smsgw.core.clock import now, parse_timestamp
from smsgw.core.hashing import Hasher
from smsgw.core.masking import HIDDEN_SECRET, reply_text
from smsgw.messages import HoldSlot, Inbound, Outbound
from smsgw.observability import metrics
from smsgw.observability.logs import get_logger
from smsgw.store import Store, StoreUnavailable
from smsgw.store.batcher import UNAVAILABLE
from smsgw.store.keys import outbox_shard
from smsgw.store.outbox import OutboxStore, Waiting
from smsgw.transport.smpp.client import NotMine, ReplyExpired, SubmitRefused

log = get_logger("smsgw.transport.outbox")
SEAL_LABEL = "outbox-otp"
# A gateway sends its held replies only while its lease surely holds: up to this share of
# [outbox] lease_seconds after the renewal began (renewals come every third of it), so a
# gateway frozen past its lease (SIGSTOP, a stalled VM, a blocked loop) does not resend
# what another gateway has taken over meanwhile (found by the outside outbox attack).
LEASE_SAFE_SHARE = 0.9
HELD_ROW_SUFFIX = "-m"  # a message's row, held by its command (its replies: "-00", "-01")
# renders a held message's replies again from its outcome (the router's `replies_for`)
Render = Callable[[Inbound, dict[str, Any]], list[Outbound]]


@dataclass(slots=True)
class Held:
    """A reply the outbox holds for this gateway: sent, and waiting to be taken."""

    reply: Outbound
    reply_id: str
    shard: int
    expires: float  # epoch seconds: not sent after this
    created: float  # epoch seconds
    # the replies of one row not finished yet, shared by them (a row held by its
    # command holds all of a message's replies); None: this reply is its own row
    together: list[int] | None = None


def gateway_id() -> str:
    """A new id for each process: a restarted gateway takes its predecessor's replies
    over like any other's."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Outbox:
    def __init__(self, store: Store, hasher: Hasher, settings: Settings,
                 owner: str | None = None, render: Render | None = None) -> None:
        self.owner = owner or gateway_id()
        self._render = render
        self.lease_seconds = settings.outbox.lease_seconds
        self._rows = OutboxStore(store)
        self._store = store
        self._hasher = hasher
        self._max_age = settings.outbox.max_age_seconds
        self._otp_validity = settings.otp.ttl_seconds
        self._to_remove: list[Held] = []
        self._to_record: list[tuple[Held, dict[str, Any]]] = []
        self._fenced: list[Held] = []  # not sent while the lease was in doubt
        self._lease_safe_until = float("-inf")  # monotonic
        self._epoch = 0  # one more each time the lease may have lapsed
        self._rows_held: set[tuple[int, str]] = set()  # (shard, row): this gateway's
        # rows a message's command script may be writing right now (prepared, its call
        # not answered yet): in hand too, so that a claim of this gateway's own rows
        # (again=1) does not send them as well
        self._writing: Counter[tuple[int, str]] = Counter()

    @property
    def rows(self) -> OutboxStore:
        return self._rows

    @property
    def holding(self) -> int:
        """Rows held by this gateway, not yet removed (the heartbeat's figure)."""
        return len(self._rows_held)

    def holds(self, waiting: Waiting) -> bool:
        """Whether this gateway has that row in hand already (sending it)."""
        key = (waiting.shard, waiting.reply_id)
        return key in self._rows_held or key in self._writing

    # -- in ---------------------------------------------------------------------------

    def slot(self, sender: str) -> HoldSlot:
        """An empty row for a message from `sender` whose command may hold its replies;
        `prepare` fills it in once the message exists."""
        return HoldSlot(outbox_shard(sender), owner=self.owner)

    def prepare(self, slot: HoldSlot, inbound: Inbound, shown: str) -> None:
        """Fill in the row of `inbound` (`shown`: its text as the log shows it): the
        message, enough to render its replies again, and how long they may wait."""
        created = time.time()
        slot.row = self._row_digest(inbound) + HELD_ROW_SUFFIX
        head = orjson.dumps({
            "recipe": {"from": inbound.sender, "to": inbound.to, "text": shown,
                       "at": inbound.at, "id": inbound.msg_id},  # as isoformat()
            "expires": created + self._max_age, "valid_ms": round(self._max_age * 1000),
            "outcome": None}).decode()
        slot.head = head.removesuffix("null}")
        if not slot.pending:
            slot.pending = True
            self._writing[(slot.shard, slot.row)] += 1

    def slot_done(self, slot: HoldSlot | None) -> None:
        """The message's routing and holding ended (the gateway calls it once, answered or
        failed): its row is not being written now (if written, it is in hand or will be
        claimed like any other)."""
        if slot is None or not slot.pending:
            return
        slot.pending = False
        key = (slot.shard, slot.row)
        self._writing[key] -= 1
        if self._writing[key] <= 0:
            del self._writing[key]

    async def hold(self, inbound: Inbound | None, replies: list[Outbound]) -> list[Held]:
        """Make replies durable (one call per shard: one for a message's replies), unless
        the message's command script held them already. Raises StoreUnavailable: then
        none of them may be acknowledged."""
        slot = inbound.hold if inbound is not None else None
        if slot is not None and slot.used:
            held = self._held_by_command(slot, replies)
            if held is not None:
                return held
        return await self._put(inbound, replies)

    async def _put(self, inbound: Inbound | None, replies: list[Outbound]) -> list[Held]:
        if not replies:
            return []
        created = time.time()
        stem = self._row_digest(inbound) if inbound is not None else ""
        held = [self._held(stem, inbound, reply, index, created)
                for index, reply in enumerate(replies)]
        by_shard: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for each in held:
            by_shard[each.shard].append((each.reply_id, self._stored(each)))
        puts = [self._rows.put(shard, self.owner, int(created * 1000), rows)
                for shard, rows in by_shard.items()]
        # in hand from before the put is sent (a claim of this gateway's own rows may
        # run meanwhile); not in hand if it fails
        fresh = {(each.shard, each.reply_id) for each in held} - self._rows_held
        self._rows_held |= fresh
        try:
            if len(puts) == 1:  # a message's replies: the common case, without a gather
                await puts[0]
            else:
                await asyncio.gather(*puts)
        except BaseException:
            self._rows_held -= fresh
            raise
        return held

    async def hold_decoys(self, decoys: list[Outbound]) -> None:
        """The work of holding `decoys` (the SMS a card without one would have got): the
        same sealing, the same store call and writes, on a decoy row, read by no one.
        A payment system timing its answers must not tell which cards the bank has."""
        created = time.time()
        for reply in decoys:
            held = self._held("", None, reply, 0, created)
            await self._rows.put_decoy(held.shard, self.owner, int(created * 1000),
                                       self._stored(held))

    def _held_by_command(self, slot: HoldSlot, replies: list[Outbound]) -> list[Held] | None:
        """The replies of a row the command script wrote. None when they cannot be
        rendered again from it (a secret, or none at all): the row is dropped, and they
        are held as replies of their own."""
        self._rows_held.add((slot.shard, slot.row))
        created = time.time()
        if not replies or any(reply.secret for reply in replies):
            self._to_remove.append(Held(Outbound("", "", "", ""), slot.row, slot.shard, 0, 0))
            return None
        together = [len(replies)]
        expires = created + self._max_age
        return [Held(reply, slot.row, slot.shard, expires, created, together)
                for reply in replies]

    def _row_digest(self, inbound: Inbound) -> str:
        """One keyed digest per message: the id of its held row, or the stem of its
        replies' ids (with their place) when they are held by a call of their own (a
        cluster; a format error). Two *different* messages that get the same text (two
        PIN changes: "your PIN has been changed" twice) are two entries: keyed by the
        reply alone, the first one's removal also removed the second, unsent (found by
        the outside outbox attack). Every delivery of one message with an id (an SMSC's
        id, a log's identity) is one entry. For a wire message without an id, the
        attempt counts too (its candidate field, the same for a retry of it): two
        identical texts on one session are two messages, both applied, so two entries
        (a shared one kept one outcome, and the first's removal dropped the second's
        replies). A redelivery on another session is an entry of its own as well: after
        a crash its replies may go twice, as they do when no gateway crashes (each
        delivery is answered with its replies)."""
        origin = self._origin(inbound)
        redelivery = inbound.redelivery
        if redelivery is None:
            return self._hasher.digest("outbox", origin)[:21]
        return self._hasher.digest("outbox", origin, redelivery.field)[:21]

    def _held(self, stem: str, inbound: Inbound | None, reply: Outbound, index: int,
              created: float) -> Held:
        if inbound is not None:
            reply_id = f"{stem}-{index:02d}"
            shard = outbox_shard(inbound.sender)
        else:
            reply_id, shard = secrets.token_hex(12), outbox_shard(reply.to)
        validity = self._otp_validity if reply.secret else self._max_age
        return Held(reply, reply_id, shard, created + min(validity, self._max_age), created)

    @staticmethod
    def _origin(inbound: Inbound) -> str:
        """What every delivery of one message shares, and two different messages do not
        (except a sender's identical texts without an id: redelivery.py cannot tell
        those from a redelivery either)."""
        if inbound.redelivery is not None:  # a wire message without an id of its own
            return f"wire\x1f{inbound.sender}\x1f{inbound.redelivery.digest}"
        if inbound.identity is not None:
            return f"id\x1f{inbound.identity}"
        return f"text\x1f{inbound.sender}\x1f{inbound.to}\x1f{inbound.text}"

    def _stored(self, held: Held) -> str:
        reply = held.reply
        entry: dict[str, Any] = {
            "to": reply.to, "from": reply.sender, "text": reply_text(reply),
            "kind": reply.kind, "receipt": reply.receipt, "about": reply.receipt_about,
            "expires": held.expires,
            # how long it may wait, from its time in the store (the store's clock): what a
            # successor reckons with, as its own clock may be skewed from this one's
            "valid_ms": round((held.expires - held.created) * 1000)}
        if reply.secret:
            entry["secret"] = self._hasher.seal(SEAL_LABEL, reply.secret)
        return orjson.dumps(entry).decode()

    def restored(self, waiting: Waiting) -> list[Held]:
        """The replies of a row read back from the store (taken over), secrets unsealed;
        a row its command held: rendered again from its outcome. ValueError, and nothing
        else, for a row that cannot be (damaged, of another version, an outcome its
        service does not render): a caller skips it and goes on with the others."""
        try:
            return self._restored(waiting)
        except ValueError:
            raise
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
            # the type only: a damaged row's content is nothing a log should repeat
            raise ValueError(f"an outbox row that cannot be read back ({type(exc).__name__})"
                             ) from exc

    def _restored(self, waiting: Waiting) -> list[Held]:
        entry = orjson.loads(waiting.entry)
        expires = float(entry["expires"])  # on the clock of the gateway that held it
        if waiting.now_ms is not None and "valid_ms" in entry:  # on this gateway's clock
            left_ms = waiting.created_ms + int(entry["valid_ms"]) - waiting.now_ms
            expires = time.time() + left_ms / 1000
        created = waiting.created_ms / 1000
        if "recipe" in entry:
            replies = self._rendered(entry)
            together = [len(replies)]
            return [Held(reply, waiting.reply_id, waiting.shard, expires, created, together)
                    for reply in replies]
        secret = self._hasher.unseal(SEAL_LABEL, entry["secret"]) if "secret" in entry else None
        text = entry["text"].replace(HIDDEN_SECRET, secret) if secret else entry["text"]
        reply = Outbound(entry["to"], entry["from"], text, entry["kind"],
                         receipt=bool(entry["receipt"]), secret=secret,
                         receipt_about=entry["about"])
        return [Held(reply, waiting.reply_id, waiting.shard, expires, created)]

    def _rendered(self, entry: dict[str, Any]) -> list[Outbound]:
        """A held message's replies, from its row. ValueError if they cannot be."""
        if self._render is None:
            raise ValueError("a message's row, and no service to render its replies")
        recipe = entry["recipe"]
        message = Inbound(recipe["from"], recipe["to"], recipe["text"],
                          parse_timestamp(recipe["at"]), msg_id=recipe["id"], from_log=True)
        return self._render(message, entry["outcome"])

    def taken_over(self, held: list[Held]) -> None:
        self._rows_held.update((each.shard, each.reply_id) for each in held)

    # -- out --------------------------------------------------------------------------

    def finished(self, held: Held, done: asyncio.Future[list[str]]) -> None:
        """A submit's done-callback: taken, refused for good or expired -> removed (and
        the last two recorded); cancelled (stopping) -> kept for whoever sends next."""
        if done.cancelled():
            return
        error = done.exception()
        if isinstance(error, NotMine):  # kept; sent again if still ours (recheck)
            self._fenced.append(held)
            return
        if isinstance(error, ReplyExpired):
            self.expire(held)
            return
        if error is not None:
            status = error.status if isinstance(error, SubmitRefused) else 0
            self._record(held, {"kind": "reply_refused", "status": f"{status:#x}"})
            metrics.OUTBOX_DROPPED.labels(reason="refused").inc()
        self._done(held)

    def _done(self, held: Held) -> None:
        """Queue the reply's row for removal, once every reply of the row is done."""
        together = held.together
        if together is not None:
            together[0] -= 1
            if together[0] > 0:
                return
        self._to_remove.append(held)

    def expire(self, held: Held) -> None:
        """Not sent: too late (an OTP past its validity, or past [outbox] max_age)."""
        reason = "otp_validity" if held.reply.secret else "max_age"
        self._record(held, {"kind": "reply_expired", "reason": reason})
        metrics.OUTBOX_DROPPED.labels(reason=reason).inc()
        self._done(held)

    def _record(self, held: Held, entry: dict[str, Any]) -> None:
        entry.update(about=held.reply.kind, at=now().isoformat())
        self._to_record.append((held, entry))

    async def flush(self) -> None:
        """Remove what was taken, in one batch; record refusals and expiries. What fails
        stays queued (a reply sent again after a crash meanwhile is the rare duplicate)."""
        if self._to_remove:
            batch, self._to_remove = self._to_remove, []
            by_shard: dict[int, list[str]] = defaultdict(list)
            for held in batch:
                by_shard[held.shard].append(held.reply_id)
            try:
                await self._rows.remove(by_shard)
            except StoreUnavailable:
                self._to_remove.extend(batch)
            else:
                self._rows_held.difference_update((each.shard, each.reply_id) for each in batch)
        if self._to_record:
            records, self._to_record = self._to_record, []
            for held, entry in records:
                with contextlib.suppress(*UNAVAILABLE):  # the removal is what matters
                    await self._store.append_history(held.reply.to, entry)

    # -- the lease --------------------------------------------------------------------

    async def renew(self) -> None:
        started = time.monotonic()
        await self._rows.renew(self.owner, int((time.time() + self.lease_seconds) * 1000))
        if started >= self._lease_safe_until:
            # the lease may have run out since the last renewal: another gateway may own
            # what this one was sending; each such reply is checked before it goes again
            self._epoch += 1
        self._lease_safe_until = started + self.lease_seconds * LEASE_SAFE_SHARE

    def lease_holds(self) -> bool:
        """No other gateway can have taken this one's replies over yet."""
        return time.monotonic() < self._lease_safe_until

    def may_send(self) -> Callable[[], bool]:
        """A submit's `may_send` (smpp/client.py) for a reply this gateway holds now:
        true while the lease holds and has not lapsed since."""
        epoch = self._epoch
        return lambda: epoch == self._epoch and self.lease_holds()

    async def recheck(self) -> list[Held]:
        """The replies held back while the lease was in doubt that are still this
        gateway's (to send now); the rest were taken over by another gateway: forgotten
        here. Call it after a renewal."""
        if not self._fenced or not self.lease_holds():
            return []
        fenced, self._fenced = self._fenced, []
        try:
            owners = await self._rows.owners([(h.shard, h.reply_id) for h in fenced])
        except StoreUnavailable:
            self._fenced.extend(fenced)
            raise
        mine = [held for held, owner in zip(fenced, owners, strict=True) if owner == self.owner]
        lost = len(fenced) - len(mine)
        if lost:
            self._rows_held.difference_update(
                (held.shard, held.reply_id) for held, owner in zip(fenced, owners, strict=True)
                if owner != self.owner)
            log.warning("outbox: replies taken over while this gateway's lease ran out",
                        replies=lost)
        return mine

    async def release(self) -> None:
        """A graceful stop: what is left is taken over at once, not after the lease."""
        with contextlib.suppress(StoreUnavailable):
            await self.end_lease()

    async def end_lease(self) -> None:
        """The lease ends now (as a kill does, once it runs out)."""
        self._lease_safe_until = float("-inf")
        await self._rows.renew(self.owner, int(time.time() * 1000) - 1)


async def listing(store: Store, hasher: Hasher, settings: Settings,
                  render: Render | None = None) -> list[dict[str, Any]]:
    """What waits in the outbox, oldest first, as `smsgw admin outbox` shows it: texts
    masked as in the message log (core/masking.py)."""
    outbox = Outbox(store, hasher, settings, owner="-", render=render)
    moment = time.time()
    rows = []
    for waiting in await outbox.rows.waiting():
        age = round(max(0.0, moment - waiting.created_ms / 1000), 1)
        for reply in _listed(outbox, waiting):
            rows.append({"to": reply.to, "from": reply.sender, "kind": reply.kind,
                         "age_seconds": age, "text": reply_text(reply),
                         "owner": waiting.owner})
    return rows


def _listed(outbox: Outbox, waiting: Waiting) -> list[Outbound]:
    try:
        return [held.reply for held in outbox.restored(waiting)]
    except ValueError:  # sealed with another key: the stored text is masked already
        pass
    try:
        stored = orjson.loads(waiting.entry)
        if "recipe" in stored:  # not renderable here: the message it answers
            recipe = stored["recipe"]
            return [Outbound(str(recipe["from"]), str(recipe["to"]), str(recipe["text"]),
                             "message")]
        return [Outbound(str(stored["to"]), str(stored["from"]), str(stored["text"]),
                         str(stored["kind"]))]
    except (ValueError, KeyError, TypeError):  # damaged: listed, its content not shown
        return [Outbound("?", "?", "(a damaged row: " + waiting.reply_id + ")", "unreadable")]
