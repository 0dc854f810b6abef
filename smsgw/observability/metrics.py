"""Prometheus metrics (served at GET /metrics by `smsgw run`)."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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
OTP_EVENTS = Counter("smsgw_otp_events_total",
                     "OTP issued, verified, failed, expired, rate-limited", ["event"])
TRANSFERS_RECOVERED = Counter(
    "smsgw_transfers_recovered_total",
    "Journaled transfers (Redis Cluster) that recovery finished: settled or reversed",
    ["outcome"])
UNCERTAIN_ANSWERS = Counter(
    "smsgw_uncertain_answers_total",
    "Messages whose answer may not have counted (store failed mid-call, or answered after "
    "the SMSC's response timer): their next delivery reuses the first outcome", ["cause"])
HTTP_REQUESTS = Histogram("smsgw_http_request_seconds", "HTTP API latency by route and status",
                          ["route", "status"])

# Set by each gateway's heartbeat (transport/heartbeat.py), for the alert rules in deploy/.
BINDS_BOUND = Gauge("smsgw_smpp_binds_bound", "SMPP binds of this gateway that are bound now")
STORE_UP = Gauge("smsgw_store_up", "1 if the store answered the gateway's last heartbeat ping")
# The outbox (interfaces.md, "Replies that must not be lost") will set these; 0 until then.
OUTBOX_REPLIES = Gauge("smsgw_outbox_replies", "Replies durable in the outbox, not yet sent")
OUTBOX_OLDEST_SECONDS = Gauge("smsgw_outbox_oldest_seconds",
                              "Age of the oldest reply waiting in the outbox")


@cache
def message_in(service: str, outcome: str) -> Any:
    return MESSAGES_IN.labels(service=service, outcome=outcome)


@cache
def message_out(kind: str, outcome: str) -> Any:
    return MESSAGES_OUT.labels(kind=kind, outcome=outcome)


def observe_replies(service: str, replies: list[Outbound], seconds: float) -> None:
    message_in(service, replies[0].kind if replies else "no_reply").inc()
    PROCESSING.observe(seconds)
