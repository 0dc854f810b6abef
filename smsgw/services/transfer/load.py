"""The credit transfer's kinds of synthetic traffic for the load test (testing/load.py):
recipients, amounts and PINs vary per subscriber, numbers and digits are written in every
accepted form, so (almost) no text repeats."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smsgw.testing.load import Command, Traffic

SHORT_CODE = "1112"


def transfer(traffic: Traffic) -> Command:
    return _transfer(traffic, traffic.rng.randrange(1000, 10_001), completes=True)


def limit(traffic: Traffic) -> Command:
    """A transfer above the largest amount: refused."""
    return _transfer(traffic, traffic.rng.randrange(10_001, 1_000_000), completes=False)


def _transfer(traffic: Traffic, amount: int, completes: bool) -> Command:
    from smsgw.testing.load import Command, as_typed, typed_amount, typed_number

    rng = traffic.rng
    sender = traffic.free(traffic.population.senders)
    recipient = _other_than(sender, traffic)
    fields = [typed_number(recipient, rng), typed_amount(amount, rng), traffic.pin(sender)]
    return Command(sender, SHORT_CODE, as_typed(fields, rng), recipient if completes else "")


def _other_than(sender: str, traffic: Traffic) -> str:
    """A recipient: any subscriber but the sender."""
    while (recipient := traffic.rng.choice(traffic.population.senders)) == sender:
        pass
    return recipient


def wrong_pin(traffic: Traffic) -> Command:
    from smsgw.testing.load import Command, as_typed, typed_number

    rng = traffic.rng
    sender = traffic.free(traffic.population.victims)
    recipient = rng.choice(traffic.population.senders)
    pin = traffic.pin(sender)
    wrong = str((int(pin[0]) + rng.randrange(1, 10)) % 10) + pin[1:]
    return Command(sender, SHORT_CODE, as_typed(
        [typed_number(recipient, rng), str(rng.randrange(1, 11) * 1000), wrong], rng))


def pin_change(traffic: Traffic) -> Command:
    """A real change: the sender's later commands use the new PIN (a sender's next
    command waits for this one's answer: Traffic.free)."""
    from smsgw.testing.load import Command, as_typed, pin_of

    rng = traffic.rng
    sender = traffic.free(traffic.population.senders)
    new = pin_of(f"{rng.randrange(10**7):07d}")
    old = traffic.pin(sender)
    traffic.set_pin(sender, new)
    keyword = rng.choice(["PIN", "pin", "Pin", "رمز"])
    return Command(sender, SHORT_CODE, as_typed([keyword, old, new, new], rng))


def bad_format(traffic: Traffic) -> Command:
    from smsgw.testing.load import Command

    rng = traffic.rng
    sender, recipient = rng.sample(traffic.population.senders, 2)
    national = f"0{recipient[2:]}"
    return Command(sender, SHORT_CODE, rng.choice([
        f"{national}:{rng.randrange(1000, 10_000)}",  # the PIN forgotten
        f"{national} {rng.randrange(1000, 10_000)} {rng.randrange(10_000, 99_999)}",
        f"salam {rng.randrange(100)}",
        f"{national[:rng.randrange(4, 10)]}:abc",
        f"{rng.randrange(1000, 10_000)}:{national}",
    ]))


LOAD_KINDS = {"transfer": transfer, "wrong_pin": wrong_pin, "bad_format": bad_format,
              "limit": limit, "pin_change": pin_change}
