"""Settings: one frozen object read from the environment (and ``.env``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ConfigError
from bot.pricing import parse_usd


class Secret:
    """A string that never shows itself in ``repr``/``str`` (logs, tracebacks, error messages)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    discord_token: Secret
    shortapi_key: Secret
    database_path: Path = Path("data/animate.db")
    shortapi_base_url: str = "https://api.shortapi.ai"
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    poll_interval_seconds: float = 5.0
    default_daily_limit_mills: int = 2000
    default_monthly_limit_mills: int = 20000
    default_guild_monthly_budget_mills: int | None = None
    dry_run: bool = False
    quote_ttl_seconds: float = 600.0
    job_timeout_seconds: float = 1200.0
    log_level: str = "INFO"
    max_active_jobs: int = 50
    max_active_jobs_per_user: int = 2
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    callback_public_url: str | None = None
    max_provider_rps: float = 10.0

    def polling_advice(self) -> str | None:
        """A warning when, without callbacks, the provider's rate cannot poll every running job
        as often as POLL_INTERVAL_SECONDS asks (finished videos would wait longer)."""
        if self.callback_public_url or self.dry_run:
            return None
        round_s = self.max_active_jobs / self.max_provider_rps
        if round_s <= self.poll_interval_seconds:
            return None
        return (
            f"Without CALLBACK_PUBLIC_URL the bot polls every running job; at "
            f"MAX_PROVIDER_RPS={self.max_provider_rps:g} and MAX_ACTIVE_JOBS="
            f"{self.max_active_jobs}, a busy bot can look at each job only every "
            f"{round_s:.0f} s (not every {self.poll_interval_seconds:g} s), so a finished video "
            f"may wait that long. Set CALLBACK_PUBLIC_URL, or lower MAX_ACTIVE_JOBS."
        )


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float,
    what: str = "a number of seconds",
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not value >= minimum:  # also rejects NaN
        raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def _usd(env: Mapping[str, str], name: str, default: str | None) -> int | None:
    raw = env.get(name, "").strip() or default
    if raw is None:
        return None
    try:
        return parse_usd(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an amount in dollars like 2.00, got {raw!r}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _integer(env, name, default, minimum=0)
    if value > 65535:
        raise ConfigError(f"{name} must be a TCP port (0-65535), got {value}")
    return value


def _url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.startswith(("http://", "https://", "ws://", "wss://")):
        raise ConfigError(f"{name} must be an http(s):// or ws(s):// URL, got {raw!r}")
    return raw.rstrip("/")


def _required(env: Mapping[str, str], name: str) -> Secret:
    raw = env.get(name, "").strip()
    if not raw:
        raise ConfigError(
            f"{name} is not set: put it in the environment or in .env (see .env.example)"
        )
    return Secret(raw)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``); raise ``ConfigError`` on bad input."""
    env = os.environ if env is None else env
    discord_token = _required(env, "DISCORD_TOKEN")
    shortapi_key = _required(env, "SHORTAPI_KEY")
    daily_limit = _usd(env, "DEFAULT_DAILY_LIMIT_USD", "2.00")
    monthly_limit = _usd(env, "DEFAULT_MONTHLY_LIMIT_USD", "20.00")
    budget = _usd(env, "DEFAULT_GUILD_MONTHLY_BUDGET_USD", None)
    level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return Settings(
        discord_token=discord_token,
        shortapi_key=shortapi_key,
        database_path=Path(env.get("DATABASE_PATH", "").strip() or "data/animate.db"),
        shortapi_base_url=_url(env, "SHORTAPI_BASE_URL", "https://api.shortapi.ai") or "",
        discord_api_base_url=_url(env, "DISCORD_API_BASE_URL", "https://discord.com/api/v10") or "",
        discord_gateway_url=_url(env, "DISCORD_GATEWAY_URL", None),
        poll_interval_seconds=_number(env, "POLL_INTERVAL_SECONDS", 5.0, minimum=0.05),
        default_daily_limit_mills=daily_limit or 0,
        default_monthly_limit_mills=monthly_limit or 0,
        default_guild_monthly_budget_mills=budget,
        dry_run=_flag(env, "SHORTAPI_DRY_RUN"),
        quote_ttl_seconds=_number(env, "QUOTE_TTL_SECONDS", 600.0, minimum=1),
        job_timeout_seconds=_number(env, "JOB_TIMEOUT_SECONDS", 1200.0, minimum=1),
        log_level=level,
        max_active_jobs=_integer(env, "MAX_ACTIVE_JOBS", 50, minimum=1),
        max_active_jobs_per_user=_integer(env, "MAX_ACTIVE_JOBS_PER_USER", 2, minimum=1),
        http_host=env.get("HTTP_HOST", "").strip() or "127.0.0.1",
        http_port=_port(env, "HTTP_PORT", 8080),
        callback_public_url=_url(env, "CALLBACK_PUBLIC_URL", None),
        max_provider_rps=_number(
            env, "MAX_PROVIDER_RPS", 10.0, minimum=0.1, what="requests per second"
        ),
    )
