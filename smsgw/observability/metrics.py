"""Prometheus metrics (served at GET /metrics by `smsgw run`)."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Histogram

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
HTTP_REQUESTS = Histogram("smsgw_http_request_seconds", "HTTP API latency by route and status",
                          ["route", "status"])


@cache
def message_in(service: str, outcome: str) -> Any:
    return MESSAGES_IN.labels(service=service, outcome=outcome)


@cache
def message_out(kind: str, outcome: str) -> Any:
    return MESSAGES_OUT.labels(kind=kind, outcome=outcome)


def observe_replies(service: str, replies: list[Outbound], seconds: float) -> None:
    message_in(service, replies[0].kind if replies else "no_reply").inc()
    PROCESSING.observe(seconds)
