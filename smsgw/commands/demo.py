"""`smsgw demo`: a scripted conversation through the gateway, printed as a chat."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click

from smsgw import admin
from smsgw.app import App, build_app
from smsgw.commands.chat import ChatPrinter
from smsgw.commands.options import config_options, load, run_async
from smsgw.config import Settings
from smsgw.core.clock import now
from smsgw.messages import Inbound, Outbound
from smsgw.services.registry import plugins
from smsgw.store import SubscriberRow
from smsgw.transport.gateway import Gateway
from smsgw.transport.smpp.client import SmppClient
from smsgw.transport.smpp.fake_smsc import FakeSmsc

ALI, SARA, REZA = "989361111111", "989351234567", "989391234567"


@click.command(name="demo")
@config_options
@click.option("--language", type=click.Choice(["fa", "en"]), default=None,
              help="Reply language of the demo subscribers.")
def command(config_file: Path | None, redis_url: str | None, language: str | None) -> None:
    """Play a scripted conversation through the whole gateway and print it as a chat.

    Starts the fake SMSC, the gateway and the embedded store in this one process: a
    transfer with both confirmations, a PIN change, a lockout and an operator unblock,
    a bad format. The first thing to run.
    """
    # the chat is the output: the service log only says what went wrong
    settings = load(config_file, redis_url, log={"level": "warning"})
    sys.exit(run_async(run_demo(settings, language)))


@dataclass(frozen=True)
class Step:
    sender: str
    text: str
    to: str = "1112"
    note: str = ""


@dataclass(frozen=True)
class CareStep:
    msisdn: str
    action: str
    note: str = ""


@dataclass(frozen=True)
class BankStep:
    """The bank: a branch registers a card, or the payment system asks for / checks an OTP."""

    action: str  # "add-card" | "payment" | "verify"
    note: str = ""


DEMO_CARD = "6279611234567894"  # a Bank of Industry and Mine BIN, valid Luhn


def demo_subscribers(language: str) -> list[SubscriberRow]:
    return [
        SubscriberRow(ALI, "prepaid", 20_000, 0, language),
        SubscriberRow(SARA, "prepaid", 5_000, 0, language),
        SubscriberRow(REZA, "postpaid", 0, 30_000, language),
    ]


SCRIPT: list[Step | CareStep | BankStep] = [
    Step(ALI, "۰۹۳۵۱۲۳۴۵۶۷:۲۰۰۰:۱۲۳۴۵۶۷۸",
         note="Ali's first transfer (typed in Persian digits) also sets his PIN"),
    Step(ALI, "PIN:12345678:55555:55555", note="Ali changes his PIN"),
    Step(ALI, "0939 123 4567 : 5,000 : 55555", note="Ali pays part of Reza's postpaid bill"),
    Step(ALI, "09351234567:1000", note="a text with a missing part"),
    Step(ALI, "09351234567:1000:11111", note="three wrong PINs block the service"),
    Step(ALI, "09351234567:1000:22222"),
    Step(ALI, "09351234567:1000:33333"),
    Step(ALI, "09351234567:1000:55555", note="blocked: even the right PIN is refused"),
    CareStep(ALI, "unblock", note="customer care unblocks Ali"),
    Step(ALI, "09351234567:1000:55555", note="and the transfer goes through"),
    *(Step(ALI, text, to=plugin.name, note=note)  # to the service's short code
      for plugin in plugins() for text, note in plugin.demo_lines),
    Step(SARA, "hello", to="3000", note="a text to a number with no service"),
    BankStep("add-card", note="a branch registers Ali's bank card with his mobile"),
    Step(ALI, "رمز پویا", to="7000", note="Ali asks for a dynamic password by SMS"),
    BankStep("payment", note="a payment page asks the bank for an OTP (1,500,000 rials)"),
    BankStep("verify", note="the payment system checks the code Ali typed"),
]

Converse = Callable[[Inbound], Awaitable[list[tuple[str, str, str]]]]
Deliver = Callable[[list[Outbound]], Awaitable[list[tuple[str, str, str]]]]


async def play(app: App, converse: Converse, deliver: Deliver, chat: ChatPrinter) -> None:
    bank: dict[str, str] = {}
    for number, step in enumerate(SCRIPT):
        if step.note:
            chat.note(f"\n— {step.note}")
        at = now()
        if isinstance(step, BankStep):
            await _bank_step(app, step, deliver, chat, bank)
            continue
        if isinstance(step, CareStep):
            await admin.care(app.store, step.msisdn, step.action.replace("-", "_"), at)
            chat.operator(at, f"smsgw admin {step.action} {step.msisdn}")
            continue
        to = short_code(app, step.to)
        chat.inbound(at, step.sender, to, step.text)
        message = Inbound(step.sender, to, step.text, at, msg_id=f"demo-{number}")
        for sender, to, text in await converse(message):
            chat.outbound(now(), sender, to, text)


def short_code(app: App, to: str) -> str:
    """A step's destination: a service's name (its configured short code), or a number."""
    service = app.services.get(to)
    return service.short_code if service is not None else to


async def _bank_step(app: App, step: BankStep, deliver: Deliver, chat: ChatPrinter,
                     bank: dict[str, str]) -> None:
    at = now()
    if step.action == "add-card":
        await admin.card_add(app.store, app.hasher, DEMO_CARD, ALI, "debit", "static-2468", at)
        chat.operator(at, f"smsgw admin card add …{DEMO_CARD[-4:]} --mobile 0{ALI[2:]}",
                      who="branch")
    elif step.action == "payment":
        answer = await app.otp.request_for_payment(DEMO_CARD, 1_500_000, "Digikala", at)
        status = "202" if answer.accepted else f"429 (retry in {answer.retry_after} s)"
        chat.operator(at, f"POST /v1/otp card …7894, 1500000 rials, Digikala -> {status}",
                      who="bank")
        bank["request_id"] = answer.request_id
        for sender, to, text in await deliver(answer.replies):
            chat.outbound(now(), sender, to, text)
            bank["otp"] = text.split("\n")[0].split()[-1]
    else:
        valid, reason = await app.otp.verify(bank["request_id"], bank.get("otp", ""), at)
        chat.operator(at, f"POST /v1/otp/verify -> valid={valid} {reason}".rstrip(), who="bank")
        valid, reason = await app.otp.verify(bank["request_id"], bank.get("otp", ""), at)
        chat.operator(at, f"the same code again -> valid={valid} ({reason}: single use)",
                      who="bank")


async def run_demo(settings: Settings, language: str | None) -> int:
    """Fake SMSC, gateway and store in this process; every message crosses real SMPP."""
    smsc = await FakeSmsc(redeliver_after=0.5).start()
    settings = _demo_settings(settings, smsc.port)
    app = build_app(settings)
    gateway = Gateway(app, SmppClient.from_settings(settings))
    running = asyncio.create_task(gateway.run())
    try:
        await smsc.wait_bound(timeout=10)
        await admin.load_subscribers(
            app.store, demo_subscribers(language or settings.replies.language), False, now()
        )
        chat = ChatPrinter(timezone=settings.transfer.timezone)
        chat.note("smsgw demo: fake SMSC <-SMPP-> gateway <-> embedded store, in one process")
        chat.note("Ali 0936… and Sara 0935… are prepaid, Reza 0939… is postpaid")
        chat.note("(the OTP resend gap is 0 in the demo; live it is [otp] resend_after_seconds)")

        async def converse(message: Inbound) -> list[tuple[str, str, str]]:
            seen = len(smsc.mt)
            mo = smsc.inject_mo(message.sender, message.to, message.text)
            await smsc.wait_answered(mo, timeout=10)
            await gateway.settle()
            return [(mt.source, mt.destination, mt.text) for mt in smsc.mt[seen:]]

        async def deliver(messages: list[Outbound]) -> list[tuple[str, str, str]]:
            seen = len(smsc.mt)
            await gateway.deliver(messages)
            await gateway.settle()
            return [(mt.source, mt.destination, mt.text) for mt in smsc.mt[seen:]]

        await play(app, converse, deliver, chat)
        await _print_balances(app, chat, now())
    finally:
        await gateway.stop(drain_timeout=5)
        await running
        await smsc.stop()
        await app.close()
    return 0


def _demo_settings(settings: Settings, smsc_port: int) -> Settings:
    return settings.model_copy(update={
        "smsc": settings.smsc.model_copy(update={"host": "127.0.0.1", "port": smsc_port}),
        # the demo asks twice within a minute; a live gateway keeps the 60 s resend gap
        "otp": settings.otp.model_copy(update={"resend_after_seconds": 0})})


async def _print_balances(app: App, chat: ChatPrinter, at: datetime) -> None:
    chat.note("\nAt the end:")
    for msisdn in (ALI, SARA, REZA):
        data = await admin.show(app.store, msisdn, at, app.settings.transfer)
        prepaid = data["plan"] == "prepaid"
        money = f"balance {data['balance']}" if prepaid else f"bill {data['bill']}"
        chat.note(f"  0{msisdn[2:]}  {data['plan']:8} {money} rials, "
                  f"sent today {data['sent_today']}")
