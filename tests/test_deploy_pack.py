"""The operations pack in deploy/: the Grafana dashboard and the Prometheus alert rules
parse, and every smsgw metric they name exists in smsgw/observability/metrics.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from smsgw.observability import metrics

DEPLOY = Path(__file__).parent.parent / "deploy"
METRIC_NAME = re.compile(r"\bsmsgw_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_count", "_sum", "_created")}
REQUIRED_ALERTS = {"SmsgwNoBoundSession", "SmsgwStoreUnavailable", "SmsgwLateAnswersRising",
                   "SmsgwOutboxGrowing", "SmsgwOtpDeliveryFailures"}


def exported_names() -> set[str]:
    """Every series name that smsgw's metrics can export."""
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def alert_rules() -> list[dict[str, object]]:
    document = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_alert_rules_parse_and_cover_the_promised_alerts() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["expr"] and rule["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]
    no_bind = next(rule for rule in rules if rule["alert"] == "SmsgwNoBoundSession")
    assert no_bind["for"] == "60s"


def test_every_metric_the_pack_names_exists() -> None:
    exported = exported_names()
    named = [name for expr in [str(r["expr"]) for r in alert_rules()] + dashboard_expressions()
             for name in METRIC_NAME.findall(expr)]
    assert named and set(named) <= exported, set(named) - exported


def test_the_dashboard_shows_binds_store_rates_latency_otp_and_outbox() -> None:
    named = {n for expr in dashboard_expressions() for n in METRIC_NAME.findall(expr)}
    assert {"smsgw_smpp_binds_bound", "smsgw_store_up", "smsgw_messages_in_total",
            "smsgw_message_processing_seconds_bucket", "smsgw_delivery_receipts_total",
            "smsgw_outbox_replies"} <= named
