"""Numbers, money and moments in the reader's locale (``bot.i18n.formats``, from CLDR), and counts
in each language's own plural forms."""

from __future__ import annotations

import pytest

from bot.errors import LimitExceeded
from bot.i18n import CATALOGUES, Money, Month, When, dumps, loads, money, msg, t, when


@pytest.mark.parametrize(
    ("locale", "mills", "shown"),
    [
        ("en-US", 170, "$0.170"),
        ("en-US", 1_234_500, "$1,234.500"),
        ("en-GB", -2500, "-US$2.500"),  # CLDR: British readers see US dollars as US$
        ("fr", 170, "0,170\u00a0$US"),
        ("fr", 1_234_500, "1\u202f234,500\u00a0$US"),
        ("de", 170, "0,170\u00a0$"),
        ("de", 1_234_500, "1.234,500\u00a0$"),
        ("es-ES", 170, "0,170\u00a0US$"),
        # CLDR groups Spanish thousands from 10 000 up (minimumGroupingDigits); Babel does not.
        ("es-ES", 1_234_500, "1.234,500\u00a0US$"),
        ("es-ES", 12_345_000, "12.345,000\u00a0US$"),
        ("es-419", 170, "USD\u00a00.170"),  # CLDR's currency spacing after a letter
        ("pt-BR", 170, "US$\u00a00,170"),
        ("ja", 680, "$0.680"),
        ("ko", 170, "US$0.170"),  # no Korean words, but Korean numbers
        ("xx", 170, "$0.170"),  # a locale CLDR does not know: English
    ],
)
def test_money_is_formatted_for_the_locale_to_the_mill(locale, mills, shown):
    assert money(locale, mills) == shown


def test_plain_dates_follow_the_locale_in_the_servers_time_zone():
    at = 1_800_057_600.0  # 2027-01-16 00:00 UTC
    assert when("en-US", at) == "Jan 16, 2027, 12:00\u202fAM UTC"
    assert when("fr", at, "Europe/Paris") == "16 janv. 2027, 01:00 Europe/Paris"
    assert when("de", at) == "16.01.2027, 00:00 UTC"
    assert when("ja", at, "Asia/Tokyo") == "2027/01/16 9:00 Asia/Tokyo"
    assert when("fr", at, "Mars/Olympus") == "16 janv. 2027, 00:00 UTC"


def test_a_moment_in_a_discord_message_is_discords_timestamp_markup():
    at = 1_800_057_600.0
    error = LimitExceeded(
        "error.limit_exceeded.daily", price=Money(170), cap=Money(2000), left=Money(100),
        spent=Money(1900), resets=When(at, "Europe/Paris"),
    )
    for locale in CATALOGUES:
        assert "<t:1800057600:f>" in error.message.render(locale)
    assert "<t:" not in error.message.render("fr", markup=False)
    assert "16 janv. 2027, 01:00 Europe/Paris" in error.message.render("fr", markup=False)


@pytest.mark.parametrize(
    ("locale", "shown"),
    [
        ("en", ["0 members", "1 member", "2 members", "1,000,000 members"]),
        ("fr", ["0 membre", "1 membre", "2 membres", "1\u202f000\u202f000 de membres"]),
        ("de", ["0 Mitglieder", "1 Mitglied", "2 Mitglieder", "1.000.000 Mitglieder"]),
        ("es-ES", ["0 miembros", "1 miembro", "2 miembros", "1.000.000 de miembros"]),
        ("pt-BR", ["0 membro", "1 membro", "2 membros", "1.000.000 de membros"]),
        ("ja", ["：0人", "：1人", "：2人", "：1,000,000人"]),
    ],
)
def test_counts_read_in_each_languages_own_plural_forms(locale, shown):
    for count, words in zip((0, 1, 2, 1_000_000), shown, strict=True):
        report = t(locale, "admin.report", period="x", timezone="UTC", count=count,
                   total=Money(0))
        assert words in report, (count, report)


@pytest.mark.parametrize(
    ("locale", "shown"),
    [("en", "January 2027"), ("fr", "janvier 2027"), ("de", "Januar 2027"),
     ("es-ES", "enero de 2027"), ("pt-BR", "janeiro de 2027"), ("ja", "2027年1月")],
)
def test_a_month_is_named_in_the_readers_language(locale, shown):
    assert Month("2027-01").iso == "2027-01"
    assert t(locale, "alert.crossed", percent=50, spent=Money(5000), budget=Money(10000),
             month=Month("2027-01"), timezone="UTC").count(shown) == 1
    assert loads(dumps(msg("alert.crossed", month=Month("2027-01")))) == msg(
        "alert.crossed", month=Month("2027-01"))
