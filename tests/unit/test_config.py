import re
from pathlib import Path

import pytest

from bot.config import Secret, load_settings, read_environment
from bot.errors import ConfigError

BASE = {"DISCORD_TOKEN": "discord-secret-token", "SHORTAPI_KEY": "shortapi-secret-key"}


def test_defaults():
    settings = load_settings(dict(BASE))
    assert settings.database_path == Path.cwd() / "data" / "animate.db"
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
        # Every number finite and in range.
        ("POLL_INTERVAL_SECONDS", "inf"),
        ("POLL_INTERVAL_SECONDS", "nan"),
        ("POLL_INTERVAL_SECONDS", "1e309"),
        ("QUOTE_TTL_SECONDS", "Infinity"),
        ("QUOTE_TTL_SECONDS", "-inf"),
        ("JOB_TIMEOUT_SECONDS", "1e12"),
        ("MAX_PROVIDER_RPS", "inf"),
        ("MAX_PROVIDER_RPS", "0"),
        ("MAX_ACTIVE_JOBS", "100000000000000000000"),
        ("MAX_ACTIVE_JOBS_PER_USER", "-1"),
        ("HTTP_PORT", "-1"),
        ("DEFAULT_DAILY_LIMIT_USD", "inf"),
        ("DEFAULT_MONTHLY_LIMIT_USD", "nan"),
        ("DEFAULT_GUILD_MONTHLY_BUDGET_USD", "1e30"),
        # Every URL with the scheme its use needs.
        ("SHORTAPI_BASE_URL", "ws://x"),
        ("SHORTAPI_BASE_URL", "https://"),
        ("DISCORD_API_BASE_URL", "wss://discord.com/api/v10"),
        ("DISCORD_API_BASE_URL", "ftp://discord.com"),
        ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg"),
        ("CALLBACK_PUBLIC_URL", "ws://bot.example"),
        ("CALLBACK_PUBLIC_URL", "bot.example"),
        ("SHARD_COUNT", "0"),
        ("SHARD_COUNT", "two"),
    ],
)
def test_malformed_values_are_one_clear_error(name, value):
    with pytest.raises(ConfigError, match=name) as info:
        load_settings({**BASE, name: value})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("POLL_INTERVAL_SECONDS", "inf", "from 0.05 to 3600"),
        ("SHORTAPI_BASE_URL", "ws://x", "http:// or https://"),
        ("DISCORD_GATEWAY_URL", "http://x", "ws:// or wss://"),
        ("DEFAULT_DAILY_LIMIT_USD", "1e30", "at most 1,000,000 dollars"),
        ("HTTP_PORT", "70000", "a TCP port from 0 to 65535"),
    ],
)
def test_range_and_scheme_errors_say_what_is_accepted(name, value, says):
    with pytest.raises(ConfigError, match=says):
        load_settings({**BASE, name: value})


def test_shortapi_key_is_not_needed_for_a_dry_run():
    settings = load_settings({"DISCORD_TOKEN": "t", "SHORTAPI_DRY_RUN": "true"})
    assert settings.dry_run
    assert settings.shortapi_key.get() == ""
    with pytest.raises(ConfigError, match="SHORTAPI_DRY_RUN=true") as info:
        load_settings({"DISCORD_TOKEN": "t"})
    assert "SHORTAPI_KEY is not set" in str(info.value)


def test_relative_database_path_is_taken_from_the_base_folder(tmp_path):
    settings = load_settings({**BASE, "DATABASE_PATH": "db/../data/x.db"}, base_dir=tmp_path)
    assert settings.database_path == tmp_path / "data" / "x.db"
    absolute = load_settings({**BASE, "DATABASE_PATH": "/srv/a.db"}, base_dir=tmp_path)
    assert absolute.database_path == Path("/srv/a.db")


def test_environment_reads_the_named_env_file_and_the_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / "conf" / "animate.env"
    env_file.parent.mkdir()
    env_file.write_text("DISCORD_TOKEN=from-file\nLOG_LEVEL=DEBUG\nEMPTY\n")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.chdir(tmp_path)
    environment = read_environment(env_file)
    assert environment.env_file == env_file
    assert environment.base_dir == env_file.parent
    assert environment.values["DISCORD_TOKEN"] == "from-file"
    assert environment.values["LOG_LEVEL"] == "ERROR"
    assert "EMPTY" not in environment.values
    with pytest.raises(ConfigError, match="no such file"):
        read_environment(tmp_path / "missing.env")


def test_environment_finds_dotenv_upwards_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("DISCORD_TOKEN=found\n")
    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    environment = read_environment()
    assert environment.env_file == tmp_path / ".env"
    assert environment.base_dir == tmp_path
    assert environment.values["DISCORD_TOKEN"] == "found"


def test_summary_tells_what_the_bot_would_do_without_secrets():
    settings = load_settings({
        **BASE, "CALLBACK_PUBLIC_URL": "https://bot.example", "SHORTAPI_DRY_RUN": "yes",
        "DEFAULT_GUILD_MONTHLY_BUDGET_USD": "50", "HTTP_PORT": "0",
    })
    text = "\n".join(f"{topic}: {line}" for topic, line in settings.summary())
    assert f"database: SQLite file {settings.database_path}" in text
    assert "HTTP server: 127.0.0.1:any free port" in text
    assert "callbacks: on: https://bot.example/callbacks/<token>" in text
    assert "dry run: on" in text
    assert "$2.00 a day and $20.00 a month" in text
    assert "server budget $50.00 a month" in text
    assert "shards: not sharded" in text
    assert "discord-secret-token" not in text
    assert "shortapi-secret-key" not in text


def test_summary_names_the_shards_of_this_process():
    fleet = load_settings({**BASE, "SHARD_COUNT": "4", "SHARD_IDS": "1,3"})
    line = dict(fleet.summary())["shards"]
    assert line.startswith("this process connects shard(s) 1, 3 of 4")
    assert "leaves to shard 0's process" in line
    alone = dict(load_settings({**BASE, "SHARD_COUNT": "2"}).summary())["shards"]
    assert alone.startswith("this process connects shard(s) 0, 1 of 2; it registers")


def test_unsharded_by_default_and_syncs_commands():
    settings = load_settings(dict(BASE))
    assert (settings.shard_count, settings.shard_ids) == (None, None)
    assert settings.syncs_commands


def test_shard_ids_are_read_sorted_and_only_shard_0_syncs_commands():
    part = load_settings({**BASE, "SHARD_COUNT": "4", "SHARD_IDS": " 3, 1"})
    assert (part.shard_count, part.shard_ids) == (4, (1, 3))
    assert not part.syncs_commands
    first = load_settings({**BASE, "SHARD_COUNT": "4", "SHARD_IDS": "2,0"})
    assert first.shard_ids == (0, 2)
    assert first.syncs_commands
    every = load_settings({**BASE, "SHARD_COUNT": "4"})
    assert (every.shard_count, every.shard_ids) == (4, None)
    assert every.syncs_commands


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHARD_IDS": "0"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, "shard 2 does not exist with SHARD_COUNT=2"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,,1"}, "separated by commas"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "one"}, "separated by commas"),
        ({"SHARD_COUNT": "3", "SHARD_IDS": "1,1"}, "names shard 1 twice"),
        ({"SHARD_COUNT": "3", "SHARD_IDS": "-1"}, "shard -1 does not exist"),
    ],
)
def test_bad_shard_settings_are_one_clear_error(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({**BASE, **env})


def test_secrets_never_show_in_repr():
    settings = load_settings(dict(BASE))
    text = repr(settings) + str(settings)
    assert "discord-secret-token" not in text
    assert "shortapi-secret-key" not in text
    assert settings.discord_token.get() == "discord-secret-token"
    assert repr(Secret("x")) == "Secret('********')"


def test_every_setting_is_documented_in_env_example_and_the_operations_guide():
    root = Path(__file__).resolve().parents[2]
    example = (root / ".env.example").read_text()
    readme = (root / "docs" / "operations.md").read_text()
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


def test_database_url_selects_postgresql_and_hides_its_password(tmp_path):
    url = "postgresql://animate:hunter2@db.example:5432/animate"
    settings = load_settings({**BASE, "DATABASE_URL": url}, base_dir=tmp_path)
    assert settings.database == url
    assert "hunter2" not in repr(settings)
    summary = dict(settings.summary())["database"]
    assert "hunter2" not in summary
    assert "db.example:5432/animate" in summary
    assert load_settings(dict(BASE), base_dir=tmp_path).database == tmp_path / "data/animate.db"


def test_a_sqlite_database_url_is_the_database_path(tmp_path):
    settings = load_settings({**BASE, "DATABASE_URL": "sqlite:///state/bot.db",
                              "DATABASE_PATH": "ignored.db"}, base_dir=tmp_path)
    assert settings.database_url is None
    assert settings.database == tmp_path / "state" / "bot.db"


def test_a_database_url_of_another_kind_is_refused():
    with pytest.raises(ConfigError, match="DATABASE_URL must look like postgresql://"):
        load_settings({**BASE, "DATABASE_URL": "mysql://root@localhost/animate"})
