import datetime as dt
import re

import pytest

from bot.errors import InvalidRequest, LimitExceeded
from bot.limits import (
    UNLIMITED,
    Caps,
    Defaults,
    GuildPolicy,
    Spent,
    check,
    periods,
    resolve,
    zone,
)

UTC = dt.UTC


def ts(*args: int, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime(*args, tzinfo=tz).timestamp()


def test_periods_are_midnight_to_midnight_in_the_servers_time_zone():
    span = periods(ts(2027, 3, 31, 23, 30), "Europe/Paris")  # 01:30 on 1 April in Paris
    assert span.day_start == ts(2027, 3, 31, 22, 0)
    assert span.day_end == ts(2027, 4, 1, 22, 0)
    assert span.month_start == ts(2027, 3, 31, 22, 0)
    assert span.month_end == ts(2027, 4, 30, 22, 0)


def test_a_day_with_a_dst_change_is_23_hours_long():
    span = periods(ts(2027, 3, 28, 12, 0), "Europe/Paris")
    assert span.day_end - span.day_start == 23 * 3600


def test_utc_is_the_default_and_december_rolls_into_january():
    span = periods(ts(2027, 12, 31, 23, 59), "UTC")
    assert span.month_start == ts(2027, 12, 1)
    assert span.month_end == ts(2028, 1, 1)


def test_unknown_time_zone_is_a_clear_error():
    with pytest.raises(InvalidRequest, match="not a time zone"):
        periods(0, "Mars/Olympus")


DEFAULTS = Defaults(daily=2000, monthly=20000, guild_budget=None)


def test_member_override_beats_roles_which_beat_server_which_beats_default():
    policy = GuildPolicy(guild_id=1, daily=1500, monthly=None)
    caps = resolve(policy, DEFAULTS, member={}, roles={})
    assert (caps.daily, caps.monthly) == (1500, 20000)
    assert caps.daily_source == "this server's limit"
    caps = resolve(policy, DEFAULTS, member={}, roles={"daily": [500, 3000]})
    assert caps.daily == 3000  # the highest cap among the member's roles
    caps = resolve(policy, DEFAULTS, member={"daily": 100}, roles={"daily": [3000]})
    assert caps.daily == 100
    caps = resolve(policy, DEFAULTS, member={}, roles={"daily": [500, UNLIMITED]})
    assert caps.daily is None


def test_budget_default_and_unlimited():
    assert resolve(GuildPolicy(1), Defaults(guild_budget=9000), member={}, roles={}).budget == 9000
    policy = GuildPolicy(1, budget=UNLIMITED)
    assert resolve(policy, Defaults(guild_budget=9000), member={}, roles={}).budget is None


CAPS = Caps(daily=2000, monthly=5000, budget=10000, daily_source="", monthly_source="")
SPAN = periods(ts(2027, 1, 15, 8), "UTC")


def test_check_returns_the_closest_limit():
    room = check(170, Spent(day=100, month=4800, guild_month=0), CAPS, SPAN, paused=False)
    assert room is not None
    assert (room.name, room.left) == ("monthly", 200)


@pytest.mark.parametrize(
    ("spent", "expected"),
    [
        (Spent(1900, 0, 0), "your daily limit of $2.00 has $0.10 left"),
        (Spent(0, 4900, 0), "your monthly limit of $5.00 has $0.10 left"),
        (Spent(0, 0, 9900), "the server's monthly budget of $10.00 has $0.10 left"),
    ],
)
def test_refusal_names_the_limit_what_is_left_and_when_it_resets(spent, expected):
    with pytest.raises(LimitExceeded) as info:
        check(170, spent, CAPS, SPAN, paused=False)
    assert expected in str(info.value)
    # The member reads Discord's timestamp (their own clock); logs read a plain date.
    assert re.search(r"It resets at <t:\d+:f>\.", info.value.message.render("en"))
    assert re.search(r"It resets at \w+ \d+, 2027, 12:00\u202fAM UTC\.", str(info.value))


def test_exactly_at_the_limit_is_allowed():
    room = check(100, Spent(1900, 0, 0), CAPS, SPAN, paused=False)
    assert room is not None
    assert room.left == 100


def test_a_zero_limit_disables_animate_and_pause_refuses_politely():
    zero = Caps(daily=0, monthly=5000, budget=None, daily_source="", monthly_source="")
    with pytest.raises(LimitExceeded, match=r"can't use /animate"):
        check(128, Spent(0, 0, 0), zero, SPAN, paused=False)
    with pytest.raises(LimitExceeded, match="paused"):
        check(128, Spent(0, 0, 0), CAPS, SPAN, paused=True)


@pytest.mark.parametrize("name", ["America", "Etc", "a" * 300, "UTC\x00", "../etc", ""])
def test_a_time_zone_name_that_is_a_folder_or_no_file_is_refused_in_words(name):
    """Admin input (issue 18): zoneinfo raises OSError for a folder or an overlong name."""
    with pytest.raises(InvalidRequest):
        zone(name)
