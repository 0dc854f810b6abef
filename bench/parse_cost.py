"""The parse cost per text on realistic traffic: µs per 1112 text (the command, and the
fields the log masks by) and per 7000 text, over a corpus from loadtest's `Traffic` in
which every text is different, so no per-text cache can help.

    PYTHONPATH=. .venv/bin/python bench/parse_cost.py [--texts 20000] [--population 100000]
"""

from __future__ import annotations

import argparse
import random
import timeit
from collections.abc import Callable

from smsgw.services.otp.parse import parse_otp_request
from smsgw.services.transfer import parse
from smsgw.testing.load import DEFAULT_MIX, Population, Traffic, parse_mix, synthetic


def corpus(texts: int, population: int, seed: int = 1) -> dict[str, list[str]]:
    """Distinct texts by short code, in the proportions of loadtest's default mix."""
    people = [synthetic(i) for i in range(population)]
    traffic = Traffic(Population(people[population // 20:], people[:population // 20],
                                 people[:200]), random.Random(seed))
    kinds, weights = zip(*parse_mix(DEFAULT_MIX).items(), strict=True)
    rng = random.Random(seed + 1)
    by_code: dict[str, dict[str, None]] = {"1112": {}, "7000": {}}
    for kind in rng.choices(kinds, weights, k=texts):
        command = traffic.command(kind)
        if command.to in by_code:  # (the enquiries at 1113 are keywords: no parser cost)
            by_code[command.to][command.text] = None  # distinct, in order
    return {code: list(found) for code, found in by_code.items()}


def per_text_us(work: Callable[[str], object], texts: list[str], repeat: int = 5) -> float:
    """The best of `repeat` passes over the corpus, µs per text."""
    def one_pass() -> None:
        for text in texts:
            work(text)
    return min(timeit.repeat(one_pass, number=1, repeat=repeat)) * 1e6 / len(texts)


def per_message(text: str) -> object:
    """What one 1112 message costs in parsing: the command, and the fields the log masks
    by (before issue 16 a second call, then answered by its cache)."""
    if hasattr(parse, "command_of"):  # one parse, read again by the log view
        return parse.command_of(parse.command_fields(text))
    return parse.parse_transfer_command(text), parse.command_fields(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--population", type=int, default=100_000)
    args = parser.parse_args()
    texts = corpus(args.texts, args.population)
    transfer_texts = texts["1112"]
    print(f"{len(transfer_texts)} distinct 1112 texts, {len(texts['7000'])} 7000 texts")
    # first access builds the grammars: not part of a text's cost
    parse.parse_transfer_command(transfer_texts[0])
    parse_otp_request("OTP")
    command = per_text_us(parse.parse_transfer_command, transfer_texts)
    fields = per_text_us(parse.command_fields, transfer_texts)
    message = per_text_us(per_message, transfer_texts)
    print(f"1112 per message (command + the log's fields): {message:.2f} µs/text")
    print(f"1112 parse_transfer_command: {command:.2f} µs/text")
    print(f"1112 command_fields (what the log masks by): {fields:.2f} µs/text")
    print(f"7000 parse_otp_request: {per_text_us(parse_otp_request, texts['7000']):.2f} µs/text")


if __name__ == "__main__":
    main()
