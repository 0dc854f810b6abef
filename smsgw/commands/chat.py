"""Printing a conversation as a readable chat (demo, and replay for people)."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.text import Text

from smsgw.core.clock import show_moment
from smsgw.core.text import national_form


class ChatPrinter:
    def __init__(self, console: Console | None = None, timezone: str = "Asia/Tehran") -> None:
        self.console = console or Console(highlight=False)
        self._tz = timezone

    def _stamp(self, at: datetime) -> str:
        return show_moment(at, self._tz, "en")

    def inbound(self, at: datetime, sender: str, to: str, text: str) -> None:
        line = Text(f"{self._stamp(at)}  ", style="dim")
        line.append(f"{national_form(sender)} → {to}", style="bold cyan")
        line.append(f"  {text}")
        self.console.print(line)

    def outbound(self, at: datetime, sender: str, to: str, text: str) -> None:
        head = Text(f"{self._stamp(at)}  ", style="dim")
        head.append(f"    {sender} → {national_form(to)}", style="bold green")
        self.console.print(head)
        for part in text.splitlines():
            self.console.print(Text(f"{'':22}{part}"))

    def operator(self, at: datetime, action: str, who: str = "care") -> None:
        line = Text(f"{self._stamp(at)}  ", style="dim")
        line.append(f"[{who}] {action}", style="bold yellow")
        self.console.print(line)

    def note(self, text: str) -> None:
        self.console.print(Text(text, style="italic"))
