"""Settings: one frozen object read from the environment (and ``.env``)."""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import yarl
from dotenv import dotenv_values, find_dotenv

from bot.errors import ConfigError
from bot.pricing import format_usd, parse_usd
from bot.storage.dsn import redact


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
    # postgresql://user:pass@host:port/db or sqlite:///path; wins over database_path.
    database_url: Secret | None = None
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
    approval_ttl_hours: float = 24.0
    log_level: str = "INFO"
    max_active_jobs: int = 50
    max_active_jobs_per_user: int = 2
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    callback_public_url: str | None = None
    max_provider_rps: float = 10.0
    shard_count: int | None = None
    lease_seconds: float = 30.0
    shard_ids: tuple[int, ...] | None = None
    metrics_token: Secret | None = None
    # Prompts and picture links older than this are erased (0: kept forever).
    prompt_retention_days: int = 90

    @property
    def syncs_commands(self) -> bool:
        """Only one process of a fleet registers application commands: the one with shard 0
        (a process without SHARD_IDS connects every shard, shard 0 included)."""
        return self.shard_ids is None or 0 in self.shard_ids

    @property
    def database(self) -> str | Path:
        """What ``Ledger.open`` opens: DATABASE_URL when set, else the DATABASE_PATH file."""
        return self.database_url.get() if self.database_url else self.database_path

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

    def summary(self) -> list[tuple[str, str]]:
        """What the bot will do with these settings, as (topic, description) lines for
        ``animate-bot check`` (never a secret's value)."""
        port = "any free port" if self.http_port == 0 else str(self.http_port)
        gateway = self.discord_gateway_url or "Discord's own"
        daily = _limit(self.default_daily_limit_mills)
        monthly = _limit(self.default_monthly_limit_mills)
        budget = (
            "none" if self.default_guild_monthly_budget_mills is None
            else format_usd(self.default_guild_monthly_budget_mills, rounded=True) + " a month"
        )
        if self.callback_public_url:
            callbacks = (
                f"on: {self.callback_public_url}/callbacks/<token>, with slower polling as "
                "the safety net"
            )
        else:
            callbacks = f"off: running jobs are polled every {self.poll_interval_seconds:g} s"
        return [
            ("database", (
                f"PostgreSQL {redact(self.database_url.get())}" if self.database_url
                else f"SQLite file {self.database_path}"
            )),
            ("HTTP server", f"{self.http_host}:{port} (/healthz, /metrics, callbacks)"),
            ("callbacks", callbacks),
            ("dry run", (
                "on: ShortAPI is never called, a sample video is posted, nothing is charged"
                if self.dry_run else "off: every Confirm pays ShortAPI"
            )),
            ("ShortAPI", f"{self.shortapi_base_url} (key {_set(self.shortapi_key)}), "
                         f"at most {self.max_provider_rps:g} requests/s"),
            ("Discord", f"REST {self.discord_api_base_url}, gateway {gateway} "
                        f"(token {_set(self.discord_token)})"),
            ("limits", f"each member {daily} a day and {monthly} a month by default; "
                       f"server budget {budget}"),
            ("capacity", f"{self.max_active_jobs} jobs rendering at once, "
                         f"{self.max_active_jobs_per_user} per member; more wait in line"),
            ("timing", f"quotes valid {self.quote_ttl_seconds:g} s; a render is given up "
                       f"after {self.job_timeout_seconds:g} s; an approval after "
                       f"{self.approval_ttl_hours:g} h"),
            ("shards", self._shards_line()),
            ("leases", f"LEASE_SECONDS={self.lease_seconds:g}: renewed every "
                       f"{self.lease_seconds / 3:g} s; a stopped process's jobs are taken over "
                       f"at once, a dead one's within {self.lease_seconds:g} s"),
            ("metrics", self._metrics_line()),
            ("privacy", (
                f"prompts and picture links erased after {self.prompt_retention_days} days"
                if self.prompt_retention_days else "prompts and picture links kept forever"
            )),
            ("log level", self.log_level),
        ]

    @property
    def metrics_refused(self) -> bool:
        """/metrics is not served on an address other machines reach unless METRICS_TOKEN
        guards it: spend and job figures are nobody else's business."""
        return self.metrics_token is None and not loopback(self.http_host)

    def _metrics_line(self) -> str:
        if self.metrics_token is not None:
            return "METRICS_TOKEN set: /metrics answers only with it as a bearer token"
        if self.metrics_refused:
            return (f"METRICS_TOKEN not set: /metrics is refused (403) on {self.http_host}, "
                    "which is not a loopback address; set METRICS_TOKEN to serve it")
        return f"METRICS_TOKEN not set: /metrics is open to this machine only ({self.http_host})"

    def _shards_line(self) -> str:
        if self.shard_count is None:
            return "not sharded: one gateway connection"
        ids = self.shard_ids if self.shard_ids is not None else range(self.shard_count)
        commands = "registers" if self.syncs_commands else "leaves to shard 0's process"
        return (
            f"this process connects shard(s) {', '.join(map(str, ids))} of {self.shard_count}; "
            f"it {commands} the application commands"
        )


def _limit(mills: int) -> str:
    return "nothing (blocked)" if mills == 0 else format_usd(mills, rounded=True)


def _set(secret: Secret) -> str:
    return "set" if secret.get() else "not set"


# The largest dollar amount a limit or budget may be set to: far above any real spend, and
# small enough that sums of mills stay exact in SQLite's 64-bit integers.
MAX_USD: Final = 1_000_000


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float,
    what: str = "a number of seconds",
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise ConfigError(
            f"{name} must be {what} from {minimum:g} to {maximum:g}, got {raw!r}"
        )
    return value


def _usd(env: Mapping[str, str], name: str, default: str | None) -> int | None:
    raw = env.get(name, "").strip() or default
    if raw is None:
        return None
    try:
        mills = parse_usd(raw)
    except (ValueError, ArithmeticError):  # ArithmeticError: too many digits to hold in mills
        mills = None
    if mills is None or mills > MAX_USD * 1000:
        raise ConfigError(
            f"{name} must be an amount in dollars like 2.00, at most {MAX_USD:,} dollars; "
            f"got {raw!r}"
        )
    return mills


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _integer(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int,
    what: str = "a whole number",
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be {what} from {minimum} to {maximum}, got {raw!r}")
    return value


def _url(
    env: Mapping[str, str], name: str, default: str | None, *, schemes: tuple[str, ...]
) -> str | None:
    """A URL whose scheme is one its use can speak (``ws://`` for a REST base would only fail
    later, at the first request)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)
    try:
        url = yarl.URL(raw)
    except ValueError:
        url = None
    if url is None or url.scheme not in schemes or not url.host:
        raise ConfigError(f"{name} must be a URL starting with {wanted}, got {raw!r}")
    return raw.rstrip("/")


def _shards(env: Mapping[str, str]) -> tuple[int | None, tuple[int, ...] | None]:
    count: int | None = None
    if env.get("SHARD_COUNT", "").strip():
        count = _integer(env, "SHARD_COUNT", 1, minimum=1, maximum=100_000)
    raw = env.get("SHARD_IDS", "").strip()
    if not raw:
        return count, None
    if count is None:
        raise ConfigError("SHARD_IDS needs SHARD_COUNT (the fleet's total number of shards)")
    ids: list[int] = []
    for part in raw.split(","):
        try:
            shard = int(part.strip())
        except ValueError:
            raise ConfigError(
                f"SHARD_IDS must be shard numbers separated by commas, like 0,2; got {raw!r}"
            ) from None
        if not 0 <= shard < count:
            raise ConfigError(
                f"SHARD_IDS: shard {shard} does not exist with SHARD_COUNT={count} "
                f"(shards are 0 to {count - 1})"
            )
        if shard in ids:
            raise ConfigError(f"SHARD_IDS names shard {shard} twice")
        ids.append(shard)
    return count, tuple(sorted(ids))


HTTP: Final = ("http", "https")
WEBSOCKET: Final = ("ws", "wss")


def _path(env: Mapping[str, str], name: str, default: str, base_dir: Path) -> Path:
    """An absolute path: a relative one is taken from ``base_dir`` (the folder of the .env file
    that was read), never from wherever the process happens to be started."""
    raw = env.get(name, "").strip() or default
    return Path(os.path.abspath(base_dir / Path(raw).expanduser()))


class MissingSetting(ConfigError):
    """A required setting is not set (the command line adds where it looked for .env)."""


def _required(env: Mapping[str, str], name: str, hint: str = "") -> Secret:
    raw = env.get(name, "").strip()
    if not raw:
        raise MissingSetting(
            f"{name} is not set: put it in the environment or in .env (see .env.example){hint}"
        )
    return Secret(raw)


def _optional_secret(env: Mapping[str, str], name: str) -> Secret | None:
    raw = env.get(name, "").strip()
    return Secret(raw) if raw else None


def _database_url(env: Mapping[str, str]) -> Secret | None:
    """A PostgreSQL URL (kept secret: it may hold a password). ``sqlite:///path`` is not kept
    here: ``load_settings`` makes it the DATABASE_PATH."""
    raw = env.get("DATABASE_URL", "").strip()
    if not raw or raw.startswith("sqlite:///"):
        return None
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "DATABASE_URL must look like postgresql://user:password@host:5432/db or "
            "sqlite:///data/animate.db"
        )
    return Secret(raw)


def _database_path(env: Mapping[str, str], base_dir: Path) -> Path:
    """The SQLite file: a ``sqlite:///`` DATABASE_URL, else DATABASE_PATH, made absolute."""
    url = env.get("DATABASE_URL", "").strip()
    if url.startswith("sqlite:///"):
        env = {"DATABASE_PATH": url.removeprefix("sqlite:///")}
    return _path(env, "DATABASE_PATH", "data/animate.db", base_dir)


def database_location(environment: Environment) -> str | Path:
    """The database the bot would open with these settings (a PostgreSQL URL or an absolute
    SQLite path), for tools that need no other setting (``python -m bot.ledger check``)."""
    url = _database_url(environment.values)
    return url.get() if url else _database_path(environment.values, environment.base_dir)


# Keys of .env read by compose.yaml, not by the bot: no warning for them.
COMPOSE_KEYS: Final = ("POSTGRES_PASSWORD",)


def loopback(host: str) -> bool:
    """Whether ``host`` (HTTP_HOST) listens for this machine only; an address for all
    interfaces (0.0.0.0, ::) or any other name is reachable from elsewhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cache
def setting_names() -> frozenset[str]:
    """Every setting's name, as this module reads it (each is a string literal here, and a test
    checks that .env.example lists exactly these): the real list, never a copy to keep."""
    source = Path(__file__).read_text(encoding="utf-8")
    return frozenset(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"', source))


def unknown_setting(name: str) -> str:
    """The warning for a key of the .env file that is no setting, with the nearest real one."""
    close = difflib.get_close_matches(name.upper(), sorted(setting_names()), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see .env.example for the settings"
    return f"{name} is not a setting and is ignored ({hint})"


@dataclass(frozen=True)
class Environment:
    """The variables settings are read from, and the .env file that contributed (if any)."""

    values: Mapping[str, str]
    env_file: Path | None
    # Where the search for .env started (the working directory), when no file was named.
    searched_from: Path | None = None
    # Keys of the .env file that are not settings (misspellings), in the file's order.
    unknown_keys: tuple[str, ...] = ()

    def source(self) -> str:
        """Where settings came from, for check and the log."""
        if self.env_file is not None:
            return str(self.env_file)
        return f"the environment only: {self.looked()}"

    def looked(self) -> str:
        """Where the .env file was read or looked for, for a setting found missing."""
        if self.env_file is not None:
            return f"read {self.env_file}"
        return f"no .env found from {self.searched_from or Path.cwd()} upwards"

    def warnings(self) -> list[str]:
        """One line per key of the .env file that is no setting."""
        return [f"{self.env_file}: {unknown_setting(key)}" for key in self.unknown_keys]

    @property
    def base_dir(self) -> Path:
        """Where relative paths in settings start: the .env file's folder, else the working
        directory."""
        return self.env_file.parent if self.env_file is not None else Path.cwd()


def read_environment(env_file: Path | None = None) -> Environment:
    """``os.environ`` over the values of ``env_file``, or of the first ``.env`` found from the
    working directory upwards when none is named. The process environment is not changed."""
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"--env-file {env_file}: no such file")
        found: Path | None = Path(os.path.abspath(env_file))
    else:
        name = find_dotenv(usecwd=True)
        found = Path(os.path.abspath(name)) if name else None
    values: dict[str, str] = {}
    if found is not None:
        try:
            read = dotenv_values(found, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {found}: {exc}") from None
        values = {key: value for key, value in read.items() if value is not None}
    unknown = tuple(key for key in values if key not in setting_names())
    return Environment({**values, **os.environ}, found,
                       searched_from=None if env_file is not None else Path.cwd(),
                       unknown_keys=unknown)


def load_settings(
    env: Mapping[str, str] | None = None, *, base_dir: Path | None = None
) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``); raise ``ConfigError`` on bad input.

    Relative paths are taken from ``base_dir`` (default: the working directory)."""
    env = os.environ if env is None else env
    base_dir = Path.cwd() if base_dir is None else base_dir
    dry_run = _flag(env, "SHORTAPI_DRY_RUN")
    discord_token = _required(env, "DISCORD_TOKEN")
    shortapi_key = (
        Secret(env.get("SHORTAPI_KEY", "").strip()) if dry_run else _required(
            env, "SHORTAPI_KEY", hint="; or set SHORTAPI_DRY_RUN=true to try the bot without it"
        )
    )
    daily_limit = _usd(env, "DEFAULT_DAILY_LIMIT_USD", "2.00")
    monthly_limit = _usd(env, "DEFAULT_MONTHLY_LIMIT_USD", "20.00")
    budget = _usd(env, "DEFAULT_GUILD_MONTHLY_BUDGET_USD", None)
    level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    shard_count, shard_ids = _shards(env)
    return Settings(
        discord_token=discord_token,
        shortapi_key=shortapi_key,
        database_path=_database_path(env, base_dir),
        shortapi_base_url=_url(
            env, "SHORTAPI_BASE_URL", "https://api.shortapi.ai", schemes=HTTP
        ) or "",
        discord_api_base_url=_url(
            env, "DISCORD_API_BASE_URL", "https://discord.com/api/v10", schemes=HTTP
        ) or "",
        discord_gateway_url=_url(env, "DISCORD_GATEWAY_URL", None, schemes=WEBSOCKET),
        poll_interval_seconds=_number(
            env, "POLL_INTERVAL_SECONDS", 5.0, minimum=0.05, maximum=3600
        ),
        database_url=_database_url(env),
        default_daily_limit_mills=daily_limit or 0,
        default_monthly_limit_mills=monthly_limit or 0,
        default_guild_monthly_budget_mills=budget,
        dry_run=dry_run,
        quote_ttl_seconds=_number(
            env, "QUOTE_TTL_SECONDS", 600.0, minimum=1, maximum=7 * 86400
        ),
        job_timeout_seconds=_number(
            env, "JOB_TIMEOUT_SECONDS", 1200.0, minimum=1, maximum=7 * 86400
        ),
        approval_ttl_hours=_number(
            env, "APPROVAL_TTL_HOURS", 24.0, minimum=0.01, maximum=30 * 24
        ),
        log_level=level,
        max_active_jobs=_integer(env, "MAX_ACTIVE_JOBS", 50, minimum=1, maximum=100_000),
        max_active_jobs_per_user=_integer(
            env, "MAX_ACTIVE_JOBS_PER_USER", 2, minimum=1, maximum=100_000
        ),
        http_host=env.get("HTTP_HOST", "").strip() or "127.0.0.1",
        http_port=_integer(
            env, "HTTP_PORT", 8080, minimum=0, maximum=65535, what="a TCP port"
        ),
        callback_public_url=_url(env, "CALLBACK_PUBLIC_URL", None, schemes=HTTP),
        max_provider_rps=_number(
            env, "MAX_PROVIDER_RPS", 10.0, minimum=0.1, maximum=10_000,
            what="requests per second",
        ),
        shard_count=shard_count,
        lease_seconds=_number(env, "LEASE_SECONDS", 30.0, minimum=3, maximum=3600),
        shard_ids=shard_ids,
        metrics_token=_optional_secret(env, "METRICS_TOKEN"),
        prompt_retention_days=_integer(
            env, "PROMPT_RETENTION_DAYS", 90, minimum=0, maximum=36500,
            what="a whole number of days",
        ),
    )
