import re
from pathlib import Path

import pytest

from bot.config import Secret, load_settings
from bot.errors import ConfigError

BASE = {"DISCORD_TOKEN": "discord-secret-token", "SHORTAPI_KEY": "shortapi-secret-key"}


def test_defaults():
    settings = load_settings(dict(BASE))
    assert settings.database_path == Path("data/animate.db")
    assert settings.shortapi_base_url == "https://api.shortapi.ai"
    assert settings.discord_api_base_url == "https://discord.com/api/v10"
    assert settings.discord_gateway_url is None
    assert settings.poll_interval_seconds == 5
    assert settings.default_daily_limit_mills == 2000
    assert settings.quote_ttl_seconds == 600
    assert settings.job_timeout_seconds == 1200


def test_every_setting_is_read():
    settings = load_settings({
        **BASE,
        "DATABASE_PATH": "/tmp/x.db",
        "SHORTAPI_BASE_URL": "http://127.0.0.1:9/",
        "DISCORD_API_BASE_URL": "http://127.0.0.1:8/api/v10",
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:8/",
        "POLL_INTERVAL_SECONDS": "0.5",
        "DEFAULT_DAILY_LIMIT_USD": "3.25",
        "QUOTE_TTL_SECONDS": "60",
        "JOB_TIMEOUT_SECONDS": "90",
        "MAX_ACTIVE_JOBS": "7",
        "MAX_ACTIVE_JOBS_PER_USER": "3",
        "HTTP_HOST": "0.0.0.0",
        "HTTP_PORT": "9090",
        "CALLBACK_PUBLIC_URL": "https://bot.example/",
        "MAX_PROVIDER_RPS": "2.5",
    })
    assert settings.database_path == Path("/tmp/x.db")
    assert settings.shortapi_base_url == "http://127.0.0.1:9"
    assert settings.discord_api_base_url == "http://127.0.0.1:8/api/v10"
    assert settings.discord_gateway_url == "ws://127.0.0.1:8"
    assert settings.poll_interval_seconds == 0.5
    assert settings.default_daily_limit_mills == 3250
    assert settings.quote_ttl_seconds == 60
    assert settings.job_timeout_seconds == 90
    assert (settings.max_active_jobs, settings.max_active_jobs_per_user) == (7, 3)
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 9090)
    assert settings.callback_public_url == "https://bot.example"
    assert settings.max_provider_rps == 2.5


@pytest.mark.parametrize("name", ["DISCORD_TOKEN", "SHORTAPI_KEY"])
def test_missing_secret_names_the_variable_and_env_example(name):
    env = dict(BASE)
    env[name] = "  "
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert name in str(info.value)
    assert ".env.example" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_INTERVAL_SECONDS", "soon"),
        ("POLL_INTERVAL_SECONDS", "0"),
        ("JOB_TIMEOUT_SECONDS", "nan"),
        ("DEFAULT_DAILY_LIMIT_USD", "two dollars"),
        ("DEFAULT_DAILY_LIMIT_USD", "-1"),
        ("SHORTAPI_BASE_URL", "api.shortapi.ai"),
        ("HTTP_PORT", "70000"),
        ("MAX_ACTIVE_JOBS", "0"),
        ("MAX_PROVIDER_RPS", "fast"),
    ],
)
def test_malformed_values_are_one_clear_error(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({**BASE, name: value})


def test_secrets_never_show_in_repr():
    settings = load_settings(dict(BASE))
    text = repr(settings) + str(settings)
    assert "discord-secret-token" not in text
    assert "shortapi-secret-key" not in text
    assert settings.discord_token.get() == "discord-secret-token"
    assert repr(Secret("x")) == "Secret('********')"


def test_every_setting_is_documented_in_env_example_and_readme():
    root = Path(__file__).resolve().parents[1]
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines()
             if line and not line.startswith("#") and "=" in line}
    source = (root / "bot" / "config.py").read_text()
    read = set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"', source))
    assert names == read
    for name in names:
        assert f"`{name}`" in readme, name
        comment_above = example.split(f"\n{name}=")[0].rstrip().splitlines()[-1]
        assert comment_above.startswith("#"), name


def test_polling_advice_when_the_provider_rate_cannot_poll_every_running_job_in_time():
    assert load_settings(dict(BASE)).polling_advice() is None  # 50 jobs / 10 rps = 5 s
    busy = load_settings({**BASE, "MAX_ACTIVE_JOBS": "1000"})
    advice = busy.polling_advice()
    assert advice is not None
    assert "every 100 s" in advice
    assert "CALLBACK_PUBLIC_URL" in advice
    with_callbacks = load_settings(
        {**BASE, "MAX_ACTIVE_JOBS": "1000", "CALLBACK_PUBLIC_URL": "https://bot.example"}
    )
    assert with_callbacks.polling_advice() is None
