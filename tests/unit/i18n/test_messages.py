"""Messages by key (``bot.i18n``): ``t`` and its English fallback, errors that carry a key and
values, which catalogue a Discord locale reads."""

from __future__ import annotations

from bot.errors import InvalidRequest, LimitExceeded
from bot.i18n import Money, Number, When, catalogue_for, has, msg, t
from cogs.utils.i18n import CheckRefused


def test_provider_failures_read_from_the_catalogue():
    from bot import shortapi

    for key in (shortapi.UNSAFE_RESULT, shortapi.NOT_A_VIDEO, "provider.unavailable",
                "provider.download_failed"):
        assert has(key)
    error = shortapi.ProviderUnavailable("provider.unavailable", detail="HTTP 503")
    assert str(error) == "ShortAPI is not available right now (HTTP 503)."
    assert error.message.render("ja") == "ShortAPI は現在利用できません（HTTP 503）。"


def test_catalogue_for_maps_discord_locales():
    assert catalogue_for("en-US") == catalogue_for("en-GB") == "en"
    assert catalogue_for("es-419") == catalogue_for("es-ES") == "es-ES"
    assert catalogue_for("pt-BR") == "pt-BR"
    assert catalogue_for("ja") == "ja"
    assert catalogue_for("ko") == "en"  # no Korean catalogue: English
    assert catalogue_for(None) == "en"


def test_a_plural_message_without_its_count_reads_the_other_form_and_is_logged(caplog):
    assert t("en", "chart.top") == "Top {count} members"
    assert "no int value 'count'" in caplog.text


def test_t_formats_values_and_falls_back_to_english():
    assert t("ja", "error.prompt_too_long", length=2500, limit=2000) == (
        "プロンプトが2500文字あります。上限は2000文字です。"
    )
    assert t("ko", "error.quote_gone") == "This quote no longer exists. Run /animate again."
    assert t("fr", "error.image_size", size=Number(21.5), limit=20) == (
        "L'image fait 21,5 Mo\u202f; la limite est de 20 Mo."
    )
    assert t("fr", "no.such.key") == "no.such.key"


def test_errors_carry_key_and_values_and_read_in_any_language():
    error = LimitExceeded(
        "error.limit_exceeded.daily", price=Money(170), cap=Money(2000), left=Money(100),
        spent=Money(1900), resets=When(1_800_057_600.0, "UTC"),
    )
    assert error.message.key == "error.limit_exceeded.daily"
    assert str(error).startswith("This video costs $0.170, but your daily limit of $2.000")
    assert "Jan 16, 2027, 12:00\u202fAM UTC" in str(error)  # for operators: a plain date
    japanese = error.message.render("ja")
    assert "$0.170" in japanese
    assert "<t:1800057600:f>" in japanese
    french = error.message.render("fr")
    assert "0,170\u00a0$US" in french
    nested = InvalidRequest("error.refund_not_delivered", job=3, state=msg("state.running"))
    assert nested.message.render("de") == (
        "Auftrag 3 ist noch im Zustand „wird gerendert“; schlägt er fehl, wird er "
        "automatisch erstattet."
    )
    assert str(CheckRefused("error.manage_server_needed")).startswith("You need the Manage")
