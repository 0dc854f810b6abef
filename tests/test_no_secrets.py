"""No PIN, OTP, static password or full card number in any log, record or stored value."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from smsgw import admin
from smsgw.core.clock import now
from smsgw.observability.logs import configure_logging
from smsgw.transport.http_api import make_app
from tests.test_otp_rules import CARD, MOBILE, otp_of
from tests.test_smpp_gateway import ALI, start_rig, stop_rig

PINS = ("48213907", "57391266", "11122233", "4821")
STATIC = "Sesame-7731"
KEY = "k-for-test"


def bounded(secret: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])")


async def test_no_secret_anywhere(redis_url: str, tmp_path: Path) -> None:
    service_log = io.StringIO()
    configure_logging("json", "debug", stream=service_log)
    root_capture = logging.StreamHandler(service_log)
    logging.getLogger().addHandler(root_capture)
    rig = await start_rig(redis_url, tmp_path)
    http = TestClient(TestServer(make_app(rig.app.otp, KEY, rig.gateway.deliver, now,
                                          rig.gateway.health)))
    await http.start_server()
    auth = {"Authorization": f"Bearer {KEY}"}
    await admin.care(rig.app.store, ALI, "reset_pin", now())  # the first transfer sets it
    try:
        # credit transfer: first PIN, a change, a wrong PIN, a garbled short PIN
        for text in (f"09351234567:1000:{PINS[0]}", f"PIN:{PINS[0]}:{PINS[1]}:{PINS[1]}",
                     f"09351234567:1000:{PINS[2]}", f"09351234567:1000:{PINS[3]}",
                     f"09351234567:1000:{PINS[1]}"):
            await rig.smsc.wait_answered(rig.smsc.inject_mo(ALI, "1112", text))
        # OTP: a card, a payment request over HTTP, an SMS request, verify and authorize
        await admin.card_add(rig.app.store, rig.app.hasher, CARD, MOBILE, "debit", STATIC, now())
        order = {"card": CARD, "amount": 2_000_000, "merchant": "Shop"}
        before = len(rig.smsc.mt)
        response = await http.post("/v1/otp", json=order, headers=auth)
        request_id = (await response.json())["request_id"]
        first_otp = otp_of_mt(await rig.smsc.wait_mt(before + 1))
        await http.post("/v1/otp/verify", json={"request_id": request_id, "otp": "000001"},
                        headers=auth)
        await http.post("/v1/otp/verify", json={"request_id": request_id, "otp": first_otp},
                        headers=auth)
        rig.app.settings.otp.resend_after_seconds = 0
        before = len(rig.smsc.mt)
        await rig.smsc.wait_answered(rig.smsc.inject_mo(MOBILE, "7000", "رمز پویا"))
        second_otp = otp_of_mt(await rig.smsc.wait_mt(before + 1))
        await http.post("/v1/payments/authorize", json={**order, "otp": second_otp}, headers=auth)
        await http.post("/v1/payments/authorize",
                        json={**order, "amount": 1000, "static_password": STATIC}, headers=auth)
        await http.post("/v1/payments/authorize",
                        json={**order, "amount": 1000, "static_password": "Wrong-1"}, headers=auth)
        await rig.gateway.settle()
        await rig.gateway.flush()
        secrets = [*PINS, STATIC, "Wrong-1", CARD, first_otp, second_otp]
        logged = service_log.getvalue()
        message_log = (rig.log_dir / "messages.jsonl").read_text(encoding="utf-8")
        records = [json.loads(line) for line in message_log.splitlines()]
        assert "bound" in logged and len(records) == 15
        assert sum(r["text"].startswith("انتقال ۱٬۰۰۰") for r in records) == 2  # 2 transfers
        for secret in secrets:
            assert not bounded(secret).search(logged), f"{secret} in the service log"
            assert not bounded(secret).search(message_log), f"{secret} in the message log"
        assert "******" in message_log  # the OTPs were there, masked
        stored = await dump(rig)
        for secret in (*PINS[:3], STATIC, "Wrong-1", CARD):
            assert secret not in stored, f"{secret} stored in clear"
    finally:
        logging.getLogger().removeHandler(root_capture)
        configure_logging("console")
        await http.close()
        await stop_rig(rig)


def otp_of_mt(mts: list) -> str:  # type: ignore[type-arg]
    from smsgw.messages import Outbound

    return otp_of(Outbound(mts[-1].destination, mts[-1].source, mts[-1].text, "otp"))


async def dump(rig) -> str:  # type: ignore[no-untyped-def]
    return await store_text(rig.app.store.redis)


async def store_text(redis: Any) -> str:
    """Everything a Redis keeps, as text (for looking for a secret in it)."""
    parts = []
    async for key in redis.scan_iter(count=1000):
        kind = await redis.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        value: Any = ""
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1)
        parts.append(f"{key!r} {value!r}")
    return "\n".join(parts)
