"""Spending limits: which caps apply to a member, their periods in the server's time zone,
and the check itself. Pure logic: the ledger feeds it sums inside its transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import InvalidRequest, LimitExceeded
from bot.i18n import Money, When

UNLIMITED: Final = -1  # stored for "no cap at all", as opposed to NULL = "use the default"


@dataclass(frozen=True, slots=True)
class Defaults:
    """From the settings: what applies where a server or member has set nothing."""

    daily: int | None = 2000
    monthly: int | None = 20000
    guild_budget: int | None = None


@dataclass(frozen=True, slots=True)
class GuildPolicy:
    guild_id: int
    timezone: str = "UTC"
    paused: bool = False
    daily: int | None = None  # None: the default; UNLIMITED: no cap
    monthly: int | None = None
    budget: int | None = None
    channels: frozenset[int] = frozenset()  # empty: every channel
    alerts_channel: int | None = None  # where budget alerts go (None: no alerts)
    # Jobs at or above this price wait for a moderator's approval (None: never).
    approval_above: int | None = None
    approval_channel: int | None = None  # where the Approve / Deny cards go
    approval_role: int | None = None  # may decide, besides Manage Server

    def needs_approval(self, price_mills: int) -> bool:
        return self.approval_above is not None and price_mills >= self.approval_above

    def budget_in_force(self, defaults: Defaults) -> int | None:
        """The monthly budget that applies (the server's, else the default); None: none."""
        budget = self.budget if self.budget is not None else defaults.guild_budget
        return None if budget is None or budget == UNLIMITED else budget


@dataclass(frozen=True, slots=True)
class Caps:
    """What is in force for one member (None = no cap). ``source`` says where each came from."""

    daily: int | None
    monthly: int | None
    budget: int | None
    daily_source: str
    monthly_source: str


@dataclass(frozen=True, slots=True)
class Periods:
    day_start: float
    day_end: float
    month_start: float
    month_end: float
    timezone: str


@dataclass(frozen=True, slots=True)
class Spent:
    day: int
    month: int
    guild_month: int


@dataclass(frozen=True, slots=True)
class Headroom:
    """The limit closest to being reached, for the quote. ``name``: daily, monthly or budget
    (catalogue key ``limit.<name>``)."""

    name: str
    cap: int
    left: int


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("America"),
        # a name too long for a file name: zoneinfo reads the name as a path below TZPATH.
        raise InvalidRequest("error.timezone_unknown", name=name) from None


def periods(now: float, timezone: str) -> Periods:
    """The day and month containing ``now``, midnight to midnight in ``timezone``."""
    tz = zone(timezone)
    today = dt.datetime.fromtimestamp(now, tz).date()
    first = today.replace(day=1)
    next_first = (first + dt.timedelta(days=32)).replace(day=1)

    def midnight(day: dt.date) -> float:
        return dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp()

    return Periods(
        day_start=midnight(today),
        day_end=midnight(today + dt.timedelta(days=1)),
        month_start=midnight(first),
        month_end=midnight(next_first),
        timezone=timezone,
    )


def _cap(value: int | None) -> int | None:
    return None if value is None or value == UNLIMITED else value


def resolve(
    policy: GuildPolicy,
    defaults: Defaults,
    *,
    member: dict[str, int | None],
    roles: dict[str, list[int | None]],
) -> Caps:
    """Member override, else the highest cap among the member's roles, else the server's
    setting, else the default. ``member``/``roles`` map ``daily``/``monthly`` to values."""
    found: dict[str, tuple[int | None, str]] = {}
    for period, server_value, default in (
        ("daily", policy.daily, defaults.daily),
        ("monthly", policy.monthly, defaults.monthly),
    ):
        if member.get(period) is not None:
            found[period] = (_cap(member[period]), "your own limit")
        elif roles.get(period):
            values = roles[period]
            # The most generous role wins; one unlimited role means no cap.
            best = None if any(_cap(v) is None for v in values) else max(
                v for v in values if v is not None
            )
            found[period] = (best, "your roles' limit")
        elif server_value is not None:
            found[period] = (_cap(server_value), "this server's limit")
        else:
            found[period] = (default, "the default limit")
    budget = defaults.guild_budget if policy.budget is None else _cap(policy.budget)
    return Caps(
        daily=found["daily"][0],
        monthly=found["monthly"][0],
        budget=budget,
        daily_source=found["daily"][1],
        monthly_source=found["monthly"][1],
    )


def check(price: int, spent: Spent, caps: Caps, span: Periods, *, paused: bool) -> Headroom | None:
    """Raise ``LimitExceeded`` naming the limit, what is left and when it resets; otherwise
    return the limit closest to being reached (None when nothing is capped)."""
    if paused:
        raise LimitExceeded("error.paused")
    checks = [
        ("daily", caps.daily, spent.day, span.day_end),
        ("monthly", caps.monthly, spent.month, span.month_end),
        ("budget", caps.budget, spent.guild_month, span.month_end),
    ]
    for name, cap, used, resets in checks:
        if cap is None:
            continue
        if cap == 0 and name != "budget":
            raise LimitExceeded("error.limit_zero", zero=Money(0))
        if used + price > cap:
            raise LimitExceeded(
                f"error.limit_exceeded.{name}",
                price=Money(price),
                cap=Money(cap, rounded=True),
                left=Money(max(0, cap - used), rounded=True),
                spent=Money(used, rounded=True),
                resets=When(resets, span.timezone),
            )
    rooms = [
        Headroom(name=name, cap=cap, left=cap - used)
        for name, cap, used, _ in checks
        if cap is not None
    ]
    return min(rooms, key=lambda room: room.left) if rooms else None
