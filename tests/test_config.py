"""Settings: the shipped file equals the built-in defaults; env and CLI override it."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsgw.config import ConfigError, load_settings, shipped_config_path

SHIPPED = Path(__file__).parent.parent / "config" / "smsgw.toml"


def test_shipped_file_equals_builtin_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/ here: built-in defaults
    assert load_settings(None) == load_settings(SHIPPED)
    assert shipped_config_path().read_text() == SHIPPED.read_text()


def test_env_overrides_file_and_cli_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_SMSC_PORT", "2776")
    monkeypatch.setenv("SMSGW_OTP_RESEND_AFTER_SECONDS", "0")
    monkeypatch.setenv("SMSGW_TRANSFER_DAILY_CAP", "70000")
    settings = load_settings(SHIPPED)
    assert (settings.smsc.port, settings.otp.resend_after_seconds) == (2776, 0)
    assert settings.transfer.daily_cap == 70_000
    assert load_settings(SHIPPED, {"smsc": {"port": 9999}}).smsc.port == 9999


def test_hash_key_from_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("a-secret-key-from-a-file\n")
    settings = load_settings(SHIPPED, {"security": {"hash_key_file": str(key_file)}})
    assert settings.security.hash_key == "a-secret-key-from-a-file"
    assert not settings.security.is_development_key
    assert load_settings(SHIPPED).security.is_development_key


@pytest.mark.parametrize("override", [
    {"otp": {"ttl_seconds": 121}},
    {"transfer": {"calendar": "lunar"}},
    {"transfer": {"fee": -1}},
    {"smsc": {"port": "many"}},
    {"account": {"short_code": "1112"}},  # two services on one short code
    {"account": {"short_kode": "1113"}},
    # settings that would make a rule meaningless
    {"otp": {"length": 0}}, {"otp": {"length": 3}}, {"otp": {"max_attempts": 0}},
    {"transfer": {"max_pin_attempts": 0}}, {"transfer": {"max_pin_attempts": -1}},
    {"smsc": {"window": 0}}, {"smsc": {"submit_rate": 0}},
    {"transfer": {"min_amount": 20_000}},  # above the default max_amount
])
def test_bad_values_are_configuration_errors(override: dict[str, dict[str, object]]) -> None:
    with pytest.raises(ConfigError):
        load_settings(SHIPPED, override)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[transfer\nfee = ")
    with pytest.raises(ConfigError):
        load_settings(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[transfer]\nfees = 5\n")
    with pytest.raises(ConfigError):
        load_settings(unknown)
