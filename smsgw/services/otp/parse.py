"""Parsing of OTP requests texted to 7000 (otp.lark, beside this file).

One regular expression made at import from the grammar's terminals, in the order of its
one rule (`KEYWORD (SEP? LAST_FOUR)?`, white space ignored between tokens): a few µs
where a Lark parse took ~10. tests/test_fast_parse.py checks it against the Lark parse.
"""

from __future__ import annotations

import re
from pathlib import Path

from smsgw.core.grammars import terminal
from smsgw.core.records import record
from smsgw.core.text import normalise

GRAMMAR = Path(__file__).parent / "otp.lark"


def _request_pattern() -> re.Pattern[str]:
    keyword, sep, last_four, space = (terminal(GRAMMAR, name).pattern
                                      for name in ("KEYWORD", "SEP", "LAST_FOUR", "WS"))
    ignored = f"(?:{space})?"
    return re.compile(f"{ignored}(?:{keyword})"
                      f"(?:{ignored}(?:(?:{sep}){ignored})?(?P<last_four>{last_four}))?{ignored}")


_REQUEST = _request_pattern()


@record
class OtpRequest:
    last_four: str | None


def parse_otp_request(text: str) -> OtpRequest | None:
    """`OTP`, `OTP:1234`, `رمز پویا ۱۲۳۴`...; None when the text is no OTP request."""
    found = _REQUEST.fullmatch(normalise(text))
    if found is None:
        return None
    return OtpRequest(found["last_four"])
