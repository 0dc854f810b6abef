"""Settings: built-in defaults < the TOML file < SMSGW_<TABLE>_<KEY> env vars < CLI options.

The defaults here equal the shipped `config/smsgw.toml` (a test keeps them in step), so an
installed `smsgw` behaves the same from any folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from smsgw.core.money import MONEY_CEILING

DEV_HASH_KEY = "DEVELOPMENT-KEY-DO-NOT-USE-IN-PRODUCTION"
MAX_OTP_TTL_SECONDS = 120


class Table(BaseModel):
    """One [table] of the file; an unknown (misspelt) key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class SmscSettings(Table):
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "smsgw"
    password: str = ""
    password_file: str = ""
    system_type: str = ""
    bind: Literal["transceiver", "receiver+transmitter"] = "transceiver"
    submit_rate: Annotated[float, Field(gt=0)] = 5000.0
    window: Annotated[int, Field(ge=1)] = 200
    redelivery_window_seconds: int = 600
    enquire_link_seconds: float = 30.0
    reconnect_max_seconds: float = 30.0
    message_id_tlv: int = 0
    order_across_binds: bool = False
    response_timer_seconds: float = 5.0


class RedisSettings(Table):
    url: str = ""
    cluster: bool = False
    processed_ttl_seconds: int = 7 * 24 * 3600


class HttpSettings(Table):
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str = ""
    metrics_key: str = ""  # when set, GET /metrics needs `Authorization: Bearer <it>`


class TransferSettings(Table):
    short_code: str = "1112"
    min_amount: int = 1_000
    max_amount: int = 10_000
    daily_cap: int = 50_000
    monthly_cap: int = 100_000
    fee: int = 500
    calendar: Literal["jalali", "gregorian"] = "jalali"
    timezone: str = "Asia/Tehran"
    prefixes: list[str] = Field(
        default_factory=lambda: ["0900-0905", "0930", "0933", "0935-0939", "0941"]
    )
    open_from: str = ""
    open_until: str = ""
    receipts: bool = False
    max_pin_attempts: Annotated[int, Field(ge=1)] = 3

    @field_validator("min_amount", "max_amount", "daily_cap", "monthly_cap", "fee")
    @classmethod
    def _within_ceiling(cls, value: int) -> int:
        if not 0 <= value <= MONEY_CEILING:
            raise ValueError(f"money settings are whole rials, 0 to {MONEY_CEILING:,}")
        return value

    @model_validator(mode="after")
    def _limits_in_order(self) -> TransferSettings:
        if self.min_amount > self.max_amount:
            raise ValueError(f"min_amount {self.min_amount:,} is above max_amount "
                             f"{self.max_amount:,}: no transfer could be made")
        return self


class AccountSettings(Table):
    """The account enquiry (smsgw/services/account/): balance and recent transfers."""

    short_code: str = "1113"


class ReplySettings(Table):
    language: Literal["fa", "en"] = "fa"


class OtpSettings(Table):
    short_code: str = "7000"
    ttl_seconds: int = 120
    length: Annotated[int, Field(ge=4, le=10)] = 6  # fewer than 4 digits is no one-time password
    max_attempts: Annotated[int, Field(ge=1)] = 3
    bins: list[str] = Field(default_factory=lambda: ["627961"])
    resend_after_seconds: Annotated[int, Field(ge=0)] = 60
    max_per_card_per_hour: Annotated[int, Field(ge=1)] = 5
    max_per_mobile_per_hour: Annotated[int, Field(ge=1)] = 10
    static_daily_limit: int = 1_000_000
    webhook_url: str = ""  # events of OTP requests (workers/webhooks.py); "" = none
    webhook_secret: str = ""  # signs them: from SMSGW_OTP_WEBHOOK_SECRET

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> OtpSettings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret (SMSGW_OTP_WEBHOOK_SECRET)")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return self

    @field_validator("ttl_seconds")
    @classmethod
    def _ttl_within_rule(cls, value: int) -> int:
        if not 0 < value <= MAX_OTP_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be 1..{MAX_OTP_TTL_SECONDS} (bank rule)")
        return value


class OutboxSettings(Table):
    """Replies durable until the SMSC takes them (transport/outbox.py)."""

    max_age_seconds: Annotated[int, Field(gt=0)] = 24 * 3600  # older: dropped, recorded
    lease_seconds: Annotated[float, Field(gt=0)] = 15.0  # a silent gateway's replies: taken over


class LogSettings(Table):
    dir: str = "var/log"
    format: Literal["auto", "json", "console"] = "auto"
    level: str = "info"
    max_bytes: int = 50 * 1024 * 1024
    backups: int = 10


class SecuritySettings(Table):
    hash_key: str = DEV_HASH_KEY
    hash_key_file: str = ""

    @model_validator(mode="after")
    def _read_key_file(self) -> SecuritySettings:
        if self.hash_key_file:
            self.hash_key = Path(self.hash_key_file).read_text(encoding="utf-8").strip()
        if not self.hash_key:
            raise ValueError("hash_key is empty")
        return self

    @property
    def is_development_key(self) -> bool:
        return self.hash_key == DEV_HASH_KEY


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SMSGW_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        case_sensitive=False,
        extra="forbid",
    )

    smsc: SmscSettings = Field(default_factory=SmscSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    otp: OtpSettings = Field(default_factory=OtpSettings)
    account: AccountSettings = Field(default_factory=AccountSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @model_validator(mode="after")
    def _one_service_per_short_code(self) -> Settings:
        codes = [self.transfer.short_code, self.otp.short_code, self.account.short_code]
        if len(set(codes)) < len(codes):
            raise ValueError(f"two services share a short code: {codes}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _TOML_PATH_FOR_LOAD.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def smsc_password(self) -> str:
        if self.smsc.password_file:
            return Path(self.smsc.password_file).read_text(encoding="utf-8").strip()
        return self.smsc.password


# pydantic-settings builds sources from class state; this holds the file for one load.
_TOML_PATH_FOR_LOAD: dict[str, Path | None] = {}


def default_config_path() -> Path | None:
    """`config/smsgw.toml` in the working folder, if there is one."""
    candidate = Path.cwd() / "config" / "smsgw.toml"
    return candidate if candidate.is_file() else None


def shipped_config_path() -> Path:
    packaged = Path(__file__).parent / "_default_config.toml"
    if packaged.is_file():
        return packaged
    return Path(__file__).parent.parent / "config" / "smsgw.toml"


class ConfigError(Exception):
    """A configuration file or value that cannot be used."""


def load_settings(
    config_file: Path | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> Settings:
    path = config_file if config_file is not None else default_config_path()
    if path is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    _TOML_PATH_FOR_LOAD["path"] = path
    try:
        return Settings(**(overrides or {}))  # type: ignore[arg-type]
    except (ValueError, OSError) as exc:
        raise ConfigError(f"bad configuration ({path or 'built-in defaults'}): {exc}") from exc
    finally:
        _TOML_PATH_FOR_LOAD.pop("path", None)


def env_redis_url() -> str:
    return os.environ.get("SMSGW_REDIS_URL", "")
