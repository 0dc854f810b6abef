"""Account enquiry at 1113: the balance (or the bill) and the last three transfers.

The whole service is this folder: account.lark + parse.py (what a text asks), reads.py
(its store reads; it writes nothing), history.py (transfers out of the history list),
service.py (the rules and replies; `AccountService` implements smsgw.services.Service),
templates/ (fa, en), demo.py (its lines in `smsgw demo`). Its settings are the
`[account]` table; app.py lists it with the other services.
"""

from smsgw.services.account.service import AccountService

__all__ = ["AccountService"]
