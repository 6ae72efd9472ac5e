import pytest

from bot.errors import InvalidRequest
from bot.pricing import VideoOptions, format_usd, parse_usd, price_mills, provider_args

# The provider's table, restated from shared/shortapi-pixverse.md: (multi, audio, res): 5/8/10 s.
TABLE = {
    (False, False, "540p"): ("0.128", "0.255", "0.281"),
    (False, False, "720p"): ("0.170", "0.340", "0.374"),
    (False, False, "1080p"): ("0.340", "0.680", None),
    (False, True, "540p"): ("0.170", "0.340", "0.374"),
    (False, True, "720p"): ("0.213", "0.425", "0.468"),
    (False, True, "1080p"): ("0.383", "0.765", None),
    (True, False, "540p"): ("0.213", "0.425", "0.468"),
    (True, False, "720p"): ("0.255", "0.510", "0.561"),
    (True, False, "1080p"): ("0.425", "0.850", None),
    (True, True, "540p"): ("0.255", "0.510", "0.561"),
    (True, True, "720p"): ("0.298", "0.595", "0.655"),
    (True, True, "1080p"): ("0.468", "0.935", None),
}
OFFERED = [
    (multi, audio, res, duration, price)
    for (multi, audio, res), prices in TABLE.items()
    for duration, price in zip((5, 8, 10), prices, strict=True)
    if price is not None
]
REFUSED = [
    (multi, audio, "1080p", 10) for multi in (False, True) for audio in (False, True)
]


def test_table_offers_every_combination_but_1080p_at_10_seconds():
    # 2 clip kinds x 2 audio x 3 resolutions x 3 durations = 36, less 4 at 1080p/10 s.
    assert len(OFFERED) == 32


@pytest.mark.parametrize(("multi", "audio", "res", "duration", "price"), OFFERED)
def test_every_offered_combination_has_the_table_price(multi, audio, res, duration, price):
    options = VideoOptions(resolution=res, duration=duration, audio=audio, multi_shot=multi)
    mills = price_mills(options)
    assert format_usd(mills) == f"${price}"
    assert mills == parse_usd(price)


@pytest.mark.parametrize(("multi", "audio", "res", "duration"), REFUSED)
def test_1080p_for_10_seconds_is_refused_before_quoting(multi, audio, res, duration):
    with pytest.raises(InvalidRequest, match="1080p is not offered at 10 s"):
        price_mills(VideoOptions(resolution=res, duration=duration, audio=audio, multi_shot=multi))


@pytest.mark.parametrize(
    "options",
    [
        VideoOptions(resolution="4k"),
        VideoOptions(duration=7),
        VideoOptions(aspect_ratio="21:9"),
    ],
)
def test_values_outside_the_choices_are_refused(options):
    with pytest.raises(InvalidRequest):
        price_mills(options)


def test_defaults_are_720p_5s_16_9_without_audio_or_multi_shot():
    assert format_usd(price_mills(VideoOptions())) == "$0.170"


def test_provider_args_send_duration_as_a_string_and_map_audio():
    args = provider_args(
        VideoOptions(resolution="540p", duration=8, aspect_ratio="9:16", audio=True,
                     multi_shot=True),
        prompt="a cat", image_url="https://cdn.example/cat.png",
    )
    assert args == {
        "prompt": "a cat", "image": "https://cdn.example/cat.png", "resolution": "540p",
        "duration": "8", "aspect_ratio": "9:16", "generate_audio": True, "multi_shot": True,
    }


@pytest.mark.parametrize(
    ("mills", "text"), [(0, "$0.000"), (170, "$0.170"), (2000, "$2.000"), (12345, "$12.345"),
                        (-170, "-$0.170")]
)
def test_format_usd_has_three_decimals(mills, text):
    assert format_usd(mills) == text


@pytest.mark.parametrize(
    ("mills", "text"), [(2000, "$2.00"), (1500, "$1.50"), (1505, "$1.505"), (0, "$0.00"),
                        (-2000, "-$2.00")]
)
def test_rounded_usd_shows_cents_where_the_last_mill_is_zero(mills, text):
    assert format_usd(mills, rounded=True) == text


@pytest.mark.parametrize(("text", "mills"), [("2", 2000), ("2.00", 2000), ("$0.1705", 171),
                                             ("0.170", 170), (" 1.5 ", 1500)])
def test_parse_usd_is_exact(text, mills):
    assert parse_usd(text) == mills


@pytest.mark.parametrize("text", ["", "abc", "-1", "nan", "inf"])
def test_parse_usd_refuses_non_amounts(text):
    with pytest.raises(ValueError, match="amount"):
        parse_usd(text)
