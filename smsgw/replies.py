"""The one place that renders reply text, from templates/<language>.toml."""

from __future__ import annotations

import tomllib
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from smsgw.text import national_form, to_persian_digits

LANGUAGES = ("fa", "en")
TEMPLATE_DIR = Path(__file__).parent / "templates"


@cache
def _templates(language: str) -> dict[str, dict[str, str]]:
    with (TEMPLATE_DIR / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)


@cache
def kinds() -> frozenset[str]:
    """Every reply kind ("section.name" of a template): a fixed set, for metric labels."""
    return frozenset(f"{section}.{name}" for language in LANGUAGES
                     for section, names in _templates(language).items() for name in names)


def pick_language(*choices: str) -> str:
    """The first supported language among the choices (subscriber's, then config's)."""
    for choice in choices:
        if choice in LANGUAGES:
            return choice
    return LANGUAGES[0]


@lru_cache(maxsize=4096)
def show_money(amount: int, language: str) -> str:
    text = f"{amount:,}"
    return to_persian_digits(text.replace(",", "٬")) if language == "fa" else text


def show_digits(digits: str, language: str) -> str:
    return to_persian_digits(digits) if language == "fa" else digits


@lru_cache(maxsize=8192)
def show_number(msisdn: str, language: str) -> str:
    national = national_form(msisdn)
    return to_persian_digits(national) if language == "fa" else national


def render(language: str, section: str, name: str, **values: Any) -> str:
    return _templates(language)[section][name].format(**values)
