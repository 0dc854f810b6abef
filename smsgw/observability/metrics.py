"""Prometheus metrics (served at GET /metrics by `smsgw run`)."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from smsgw.core import replies
from smsgw.messages import Outbound

MESSAGES_IN = Counter("smsgw_messages_in_total", "Inbound messages by short code and outcome",
                      ["service", "outcome"])
MESSAGES_OUT = Counter("smsgw_messages_out_total", "Replies by kind and SMSC outcome",
                       ["kind", "outcome"])
RECEIPTS = Counter("smsgw_delivery_receipts_total", "Delivery receipts by final state",
                   ["state"])
PROCESSING = Histogram("smsgw_message_processing_seconds",
                       "From a deliver_sm decoded to its replies decided",
                       buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0))
# An OTP request that sent an SMS and one that sent none (unknown, foreign, disabled or
# blocked card) are one event, "accepted": no label may tell whether a card exists.
OTP_EVENTS = Counter("smsgw_otp_events_total",
                     "OTP requests accepted or rate-limited; checks verified or failed",
                     ["event"])
TRANSFERS_RECOVERED = Counter(
    "smsgw_transfers_recovered_total",
    "Journaled transfers (Redis Cluster) that recovery finished: settled or reversed",
    ["outcome"])
UNCERTAIN_ANSWERS = Counter(
    "smsgw_uncertain_answers_total",
    "Messages whose answer may not have counted (store failed mid-call, or answered after "
    "the SMSC's response timer): their next delivery reuses the first outcome", ["cause"])
WEBHOOK_DELIVERIES = Counter(
    "smsgw_webhook_deliveries_total",
    "Webhook delivery attempts: delivered, retried (non-2xx, none in 5 s) or given up",
    ["outcome"])
HTTP_REQUESTS = Histogram("smsgw_http_request_seconds", "HTTP API latency by route and status",
                          ["route", "status"])

# Set by each gateway's heartbeat (transport/heartbeat.py), for the alert rules in deploy/.
BINDS_BOUND = Gauge("smsgw_smpp_binds_bound", "SMPP binds of this gateway that are bound now")
STORE_UP = Gauge("smsgw_store_up", "1 if the store answered the gateway's last heartbeat ping")
# The outbox (interfaces.md, "Replies that must not be lost"): the gauges are the whole
# store's outbox (every gateway reports the same figures; set by workers/outbox.py).
OUTBOX_REPLIES = Gauge("smsgw_outbox_replies",
                       "Entries durable in the outbox, not yet accepted by the SMSC: "
                       "a reply, or all the replies of one message held by its command")
OUTBOX_OLDEST_SECONDS = Gauge("smsgw_outbox_oldest_seconds",
                              "Age of the oldest reply waiting in the outbox")
OUTBOX_RESENT = Counter(
    "smsgw_outbox_resent_total",
    "Replies this gateway took over from a gateway that stopped (killed, cut off, or its "
    "own predecessor) and sent again: one may reach its phone twice if the SMSC had taken "
    "it but its answer was lost")
OUTBOX_DROPPED = Counter("smsgw_outbox_dropped_total",
                         "Replies dropped from the outbox unsent: refused for good by the "
                         "SMSC, an OTP past its validity, or older than max_age",
                         ["reason"])


# Every label value comes from a fixed set, never from what a sender or an SMSC chose
# (each new value would be a new series, kept for ever): short codes are the configured
# ones or "other" (the gateway maps them), reply kinds the templates' names, receipt
# states those of SMPP 3.4 (Appendix B).
RECEIPT_STATES = frozenset({"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD",
                            "UNKNOWN", "REJECTD", "ENROUTE"})
OTHER = "other"


def reply_kind_label(kind: str) -> str:
    return kind if kind in replies.kinds() else OTHER


@cache
def message_in(service: str, outcome: str) -> Any:
    """Both must be labels already: `service` a configured short code or "other"."""
    return MESSAGES_IN.labels(service=service, outcome=outcome)


@cache
def message_out(kind: str, outcome: str) -> Any:
    return MESSAGES_OUT.labels(kind=reply_kind_label(kind), outcome=outcome)


def receipt(state: str) -> None:
    label = state if state in RECEIPT_STATES else (OTHER if state else "unknown")
    RECEIPTS.labels(state=label).inc()


def observe_replies(service: str, sent: list[Outbound], seconds: float) -> None:
    message_in(service, reply_kind_label(sent[0].kind) if sent else "no_reply").inc()
    PROCESSING.observe(seconds)
