"""The one place that renders reply text, from <folder>/<language>.toml: each service
package's own templates/ (`Templates(its folder)`), and smsgw/templates/ for the replies
of no service (an unknown short code)."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from smsgw.core.records import record
from smsgw.core.text import PERSIAN_DIGITS, national_form, to_persian_digits

LANGUAGES = ("fa", "en")
TEMPLATE_DIR = Path(__file__).parent.parent / "templates"


@cache
def _templates(folder: Path, language: str) -> dict[str, dict[str, str]]:
    with (folder / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)


@record
class Templates:
    """The reply texts of one folder of <language>.toml files, read once."""

    folder: Path

    def render(self, language: str, section: str, name: str, **values: Any) -> str:
        return _templates(self.folder, language)[section][name].format(**values)


SHARED = Templates(TEMPLATE_DIR)


@cache
def kinds() -> frozenset[str]:
    """Every reply kind ("section.name" of a template) of every service's templates and
    the shared ones: a fixed set, for metric labels."""
    package = Path(__file__).parent.parent
    folders = [toml.parent for toml in package.glob(f"**/templates/{LANGUAGES[0]}.toml")]
    return frozenset(f"{section}.{name}" for folder in folders
                     for language in LANGUAGES
                     for section, names in _templates(folder, language).items()
                     for name in names)


def pick_language(*choices: str) -> str:
    """The first supported language among the choices (subscriber's, then config's)."""
    for choice in choices:
        if choice in LANGUAGES:
            return choice
    return LANGUAGES[0]


# Persian digits and the Arabic thousands separator (U+066C), in one pass
_MONEY_FA = str.maketrans({",": "٬", **{str(i): digit for i, digit in enumerate(PERSIAN_DIGITS)}})


def show_money(amount: int, language: str) -> str:
    text = f"{amount:,}"
    return text.translate(_MONEY_FA) if language == "fa" else text


def show_digits(digits: str, language: str) -> str:
    return to_persian_digits(digits) if language == "fa" else digits


def show_number(msisdn: str, language: str) -> str:
    national = national_form(msisdn)
    return to_persian_digits(national) if language == "fa" else national
