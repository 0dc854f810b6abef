"""Parsing of OTP requests texted to 7000 (otp.lark, beside this file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lark

from smsgw.core.grammars import lalr_parser
from smsgw.core.text import normalise

GRAMMAR = Path(__file__).parent / "otp.lark"


@dataclass(frozen=True, slots=True)
class OtpRequest:
    last_four: str | None


def parse_otp_request(text: str) -> OtpRequest | None:
    """`OTP`, `OTP:1234`, `رمز پویا ۱۲۳۴`...; None when the text is no OTP request."""
    try:
        tree = lalr_parser(GRAMMAR).parse(normalise(text))
    except lark.exceptions.LarkError:
        return None
    digits = [str(t) for t in tree.children if getattr(t, "type", "") == "LAST_FOUR"]
    return OtpRequest(digits[0] if digits else None)
