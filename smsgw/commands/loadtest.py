"""`smsgw loadtest`: its options and report; the engine is smsgw/testing/load.py."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import click

from smsgw.commands.options import config_options, load, run_async


@click.command(name="loadtest")
@config_options
@click.option("--rate", default=500.0, show_default=True, type=click.FloatRange(min=1),
              help="Commands injected per second (open loop).")
@click.option("--duration", default=10.0, show_default=True,
              type=click.FloatRange(min=1, max=3600), help="Seconds of injection.")
@click.option("--population", default=2000, show_default=True,
              type=click.IntRange(min=10, max=1_000_000), help="Synthetic subscribers.")
@click.option("--mix", default=None, metavar="KIND=SHARE,...",
              help="Shares of transfer, wrong_pin, bad_format, limit, pin_change, otp "
                   "(default: transfer=80 and 4 of each other).")
@click.option("--gateway", "gateway_mode", type=click.Choice(["inprocess", "spawn", "external"]),
              default="inprocess", show_default=True,
              help="inprocess: in this process; spawn: start `smsgw run` as its own process; "
                   "external: wait for a gateway you start to bind to --listen.")
@click.option("--listen", "listen_port", default=0, type=click.IntRange(min=0, max=65535),
              help="Port of the fake SMSC (loopback; default: any free port).")
@click.option("--smsc", "smsc_address", default=None, metavar="HOST:PORT",
              help="Use a running `smsgw fake-smsc` (with a gateway bound to it) instead of "
                   "starting one: the driver binds to it as system_id 'loadtest'. Needs "
                   "--redis (the gateway's store).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the results as one JSON object.")
@click.option("--seed", default=1, show_default=True, help="Seed of the command mix.")
@click.option("--gateways", default=1, show_default=True, type=click.IntRange(min=1, max=16),
              help="With --gateway spawn: this many `smsgw run` processes, each on its own "
                   "bind, sharing --redis, in one order per subscriber across them.")
def command(config_file: Path | None, redis_url: str | None, rate: float, duration: float,
            population: int, mix: str | None, gateway_mode: str, listen_port: int,
            smsc_address: str | None, json_file: Path | None, seed: int,
            gateways: int) -> None:
    """Drive a gateway through the fake SMSC at a target rate, and measure it.

    Loads synthetic subscribers (0936 900 0000 and up; earlier runs' leftovers in that
    range are removed first), injects a realistic mix for --duration seconds on loopback,
    shows progress, then prints throughput, latency percentiles (MO injected to its last
    reply), errors by kind and the money check.
    """
    from smsgw.testing.load import DEFAULT_MIX, LoadTestOptions, Progress, parse_mix, run_loadtest

    settings = load(config_file, redis_url)
    if settings.security.is_development_key:  # a throwaway key for this run's population
        settings = settings.model_copy(update={"security": settings.security.model_copy(
            update={"hash_key": secrets.token_hex(16)})})
    try:
        shares = parse_mix(mix or DEFAULT_MIX)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mix") from exc
    if gateways > 1 and gateway_mode != "spawn":
        raise click.UsageError("--gateways N needs --gateway spawn")
    options = LoadTestOptions(rate, duration, population, shares, gateway_mode, listen_port,
                              seed, smsc=_host_port(smsc_address) if smsc_address else None,
                              gateways=gateways)
    try:
        results = run_async(run_loadtest(settings, options, Progress()))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    summary = results.as_json()
    click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    if results.overloaded:
        click.echo(f"overloaded: {results.errors['unanswered']:,} commands unanswered and "
                   f"{results.errors['not_sent_backlog']:,} not sent at {rate:,.0f}/s: the "
                   "gateway did not keep up, so these figures describe an overload; try a "
                   "lower --rate for a sustained one", err=True)
    refused = results.errors["transfer_refused"] + results.errors["transfer_refused_by_cap"]
    if refused:
        click.echo(f"{refused:,} transfers meant to go through were refused "
                   f"({results.errors['transfer_refused_by_cap']:,} by a cap; earlier runs' "
                   "sums are cleared first): a refusal is less work than a transfer, so the "
                   "rate measured flatters", err=True)
    if json_file is not None:
        json_file.write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--smsc")
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise click.BadParameter("load tests send traffic to loopback only", param_hint="--smsc")
    return host, int(port)
