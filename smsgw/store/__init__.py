"""The store: Redis and its server-side scripts.

    store.py   the Store: the connection, script calls, the shared reads
    script.py  Script, the typed object each .lua file has (keys, argument order, result)
    shared.py  the shared scripts' objects (scripts/*.lua); services keep theirs in
               services/<name>/store.py beside services/<name>/scripts/
    keys.py    the key formats more than one script or read uses
    connect.py the Redis client for a URL (server, cluster, embedded)
    batcher.py, pipe.py   script calls pipelined per event-loop turn
    audit.py   the money invariant
    durability.py  whether Redis keeps what it answered through a power cut
    errors.py  what the store raises
"""

from smsgw.store.audit import money_total
from smsgw.store.errors import CrossSlotCall, StoreUnavailable, WrongStoreMode
from smsgw.store.script import HISTORY_LENGTH
from smsgw.store.store import Assembly, PartLimits, Store, SubscriberRow

__all__ = ["HISTORY_LENGTH", "Assembly", "CrossSlotCall", "PartLimits", "Store",
           "StoreUnavailable", "SubscriberRow", "WrongStoreMode", "money_total"]
