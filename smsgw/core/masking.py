"""What a log may show of a message: the one place that decides it.

Used by the message log, replay's output and its `--compare` report, and any log line
or report that would carry a text. The rule: every digit is hidden (`*`) unless a
service declares the part that holds it safe to show; a PIN is written as its keyed
digest token (`h~` + the digest the store keeps), so `smsgw replay` with the key checks
it like the PIN and nobody else learns anything; a reply's secret (an OTP) is `******`.

A service declares its view of a text as parts (`log_view`): `Shown` (safe as is: a
valid recipient and amount, the last four digits of a card), `Secret` (a PIN), and plain
strings (digits hidden); it reads the parse its service made of the message (kept on the
Inbound), not a second one. A service that declares nothing has every digit hidden. A
service's view must keep replay faithful: the masked text, read back from a log, gets
the same replies as the original (tests/test_masking.py proves it for every service).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from smsgw.core.hashing import Hasher
from smsgw.core.pins import PIN_TOKEN_PREFIX, LoggedPin, Pin
from smsgw.core.records import record
from smsgw.core.text import looks_like_digit
from smsgw.messages import Inbound, Outbound

HIDDEN_DIGIT = "*"
HIDDEN_SECRET = "******"


@record
class Shown:
    """A part a service declares safe to show as it is."""

    text: str


@record
class Secret:
    """A PIN: the log writes its keyed digest token."""

    pin: Pin


Part = Shown | Secret | str  # a plain string: shown with every digit hidden
LogView = Callable[[Inbound], Iterable[Part]]


def hide_digits(text: str) -> str:
    """Every character that is or looks like a digit becomes `*`; a token mark too, so
    that a hidden part can never read back as a PIN token."""
    hidden = "".join(HIDDEN_DIGIT if looks_like_digit(char) else char for char in text)
    return hidden.replace(PIN_TOKEN_PREFIX, PIN_TOKEN_PREFIX[0] + HIDDEN_DIGIT)


def pin_token(hasher: Hasher, msisdn: str, pin: Pin) -> str:
    """How a log writes a PIN: the digest the store keeps, marked so it is no digits."""
    digest = pin.digest if isinstance(pin, LoggedPin) else hasher.pin_digest(msisdn, pin)
    return PIN_TOKEN_PREFIX + digest


def render(parts: Iterable[Part], hasher: Hasher, msisdn: str) -> str:
    return "".join(
        part.text if isinstance(part, Shown)
        else pin_token(hasher, msisdn, part.pin) if isinstance(part, Secret)
        else hide_digits(part)
        for part in parts
    )


def inbound_text(message: Inbound, view: LogView | None, hasher: Hasher) -> str:
    """The text of an inbound message as a log may show it; `view`: its service's
    declaration, if any."""
    parts: Iterable[Part] = view(message) if view is not None else (message.text,)
    return render(parts, hasher, message.sender)


def reply_text(reply: Outbound) -> str:
    """A reply as a log may show it: its secret (an OTP) masked wherever it occurs."""
    if reply.secret:
        return reply.text.replace(reply.secret, HIDDEN_SECRET)
    return reply.text
