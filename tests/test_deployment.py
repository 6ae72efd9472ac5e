"""Dockerfile and compose.yaml (no Docker engine here): every setting they name is one the bot
reads, and the container runs the ``animate-bot`` console script."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
BASE = {"DISCORD_TOKEN": "t", "SHORTAPI_KEY": "k"}


def bot_settings() -> set[str]:
    """Every variable name bot/config.py reads."""
    source = (ROOT / "bot" / "config.py").read_text()
    return set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"', source))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) with line continuations joined and comments left out."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines if line and not line.startswith("#")
    ]


def compose_environments() -> dict[str, dict[str, str]]:
    """The ``environment:`` mapping of each service in compose.yaml (a small, indentation-based
    reader for the file's own plain style: no YAML library is needed for this)."""
    services: dict[str, dict[str, str]] = {}
    section = service = None
    in_environment = False
    for raw in (ROOT / "compose.yaml").read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip())
        key, _, value = raw.strip().partition(":")
        if indent == 0:
            section, service, in_environment = key, None, False
        elif section == "services" and indent == 2:
            service, in_environment = key, False
            services[service] = {}
        elif service is not None and indent == 4:
            in_environment = key == "environment"
        elif service is not None and in_environment and indent == 6:
            services[service][key] = value.strip().strip('"')
    return services


def test_the_container_runs_the_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["animate-bot"] == "bot.__main__:main"
    (entrypoint,) = [args for name, args in dockerfile_instructions() if name == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["animate-bot"]
    froms = [args for name, args in dockerfile_instructions() if name == "FROM"]
    assert froms
    assert all("slim" in image for image in froms)


def test_the_container_runs_as_a_non_root_user_with_a_healthcheck_on_healthz():
    instructions = dockerfile_instructions()
    users = [args for name, args in instructions if name == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    (health,) = [args for name, args in instructions if name == "HEALTHCHECK"]
    assert "/healthz" in health
    # The check asks the port the bot listens on.
    assert "HTTP_PORT" in health


def test_every_setting_the_dockerfile_sets_is_read_by_the_bot():
    settings = bot_settings()
    env: dict[str, str] = {}
    for name, args in dockerfile_instructions():
        if name == "ENV":
            env.update(re.findall(r"([A-Z][A-Z0-9_]*)=(\S+)", args))
    own = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "PIP_"))}
    assert own, "the Dockerfile sets no bot setting"
    assert set(own) <= settings, set(own) - settings
    load_settings({**BASE, **own})  # and the values are valid


def test_compose_runs_two_bots_on_one_postgres_with_the_shards_split():
    services = compose_environments()
    settings = bot_settings()
    bots = {name: env for name, env in services.items() if name != "postgres"}
    assert len(bots) == 2
    shard_ids: list[int] = []
    for name, env in bots.items():
        assert set(env) <= settings, (name, set(env) - settings)
        assert env["DATABASE_URL"].startswith("postgresql://")
        concrete = {k: v.replace("${POSTGRES_PASSWORD}", "secret") for k, v in env.items()}
        parsed = load_settings({**BASE, **concrete})
        assert parsed.shard_ids is not None
        assert parsed.shard_count == 2
        shard_ids += parsed.shard_ids
    assert sorted(shard_ids) == [0, 1]  # every shard in exactly one process
    text = (ROOT / "compose.yaml").read_text()
    assert "env_file: .env" in text
    assert "pgdata:/var/lib/postgresql/data" in text
    for secret in ("DISCORD_TOKEN", "SHORTAPI_KEY"):
        assert secret not in text.split("\nservices:", 1)[1], f"{secret} belongs in .env"
