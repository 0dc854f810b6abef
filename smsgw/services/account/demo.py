"""The enquiry's lines in `smsgw demo`: (text, note), sent to 1113 by the demo's first
subscriber after his transfers (smsgw/demo.py plays them)."""

from __future__ import annotations

DEMO_LINES = (
    ("BAL", "Ali asks 1113 for his balance"),
    ("گزارش", "and for his last three transfers (HIST or گزارش)"),
)
