"""Dockerfile and compose.yaml, read as files: every setting they name is one the bot reads, the
container runs the ``animate-bot`` console script and works with the .env the docs tell an owner
to write. Building and running them is .ci/containers' part, where an engine answers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
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


def env_example(**filled: str) -> dict[str, str]:
    """.env.example as an owner copies it (``cp .env.example .env``), with ``filled`` values."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = filled.get(key, value)
    return values


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in dockerfile_instructions():
        if name == "ENV":
            env.update(re.findall(r"([A-Z][A-Z0-9_]*)=(\S+)", args))
    return env


def test_the_containers_work_with_the_env_copied_from_env_example():
    """compose's precedence: the image's ENV, then env_file (.env), then `environment:`. The
    .env written for a bot outside a container says HTTP_HOST=127.0.0.1 (published ports would
    reach nothing) and DATABASE_PATH=data/animate.db (relative to /data, the working
    directory): the service's own environment must win for both."""
    dotenv = env_example(DISCORD_TOKEN="t", SHORTAPI_DRY_RUN="true", POSTGRES_PASSWORD="pw")
    assert dotenv["HTTP_HOST"] == "127.0.0.1"  # what the owner's .env says
    for name, service in compose_environments().items():
        if name == "postgres":
            continue
        concrete = {k: v.replace("${POSTGRES_PASSWORD}", "pw") for k, v in service.items()}
        effective = {**image_env(), **dotenv, **concrete}
        settings = load_settings(effective, base_dir=Path("/data"))
        assert settings.http_host == "0.0.0.0", name
        assert settings.http_port == 8080, name
        assert settings.database_path == Path("/data/animate.db"), name
        assert settings.database_url is not None
        assert settings.database_url.get() == "postgresql://animate:pw@postgres:5432/animate"
        assert settings.metrics_refused  # /metrics on the published port needs METRICS_TOKEN
        assert not settings.dry_run or settings.shortapi_key.get() == ""


def test_the_bots_stop_restarting_after_a_few_failures():
    """Exit 2 is a setting to fix: `unless-stopped` would restart it forever."""
    text = (ROOT / "compose.yaml").read_text()
    x_bot = text.split("\nservices:", 1)[0]
    (policy,) = re.findall(r"^\s+restart:\s*(\S+)", x_bot, re.MULTILINE)
    match = re.fullmatch(r"on-failure:(\d+)", policy)
    assert match, policy
    assert 1 <= int(match.group(1)) <= 10
    assert "restart: on-failure:" in (ROOT / "docs" / "operations.md").read_text()


def test_postgres_password_is_in_env_example_with_its_comment():
    example = (ROOT / ".env.example").read_text()
    assert "\nPOSTGRES_PASSWORD=\n" in example
    comment = example.split("\nPOSTGRES_PASSWORD=")[0].rstrip().splitlines()[-1]
    assert comment.startswith("#")
    assert "compose" in example.split("\nPOSTGRES_PASSWORD=")[0].rsplit("\n\n", 1)[-1]
    assert "${POSTGRES_PASSWORD:?" in (ROOT / "compose.yaml").read_text()


def test_ci_builds_and_runs_the_containers_or_says_in_one_line_why_not(tmp_path):
    """No engine answers here: a `docker` whose daemon is down (as on this machine) is skipped
    with one line, and CI goes on."""
    assert ".ci/containers" in (ROOT / ".ci" / "run").read_text().splitlines()
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "docker").write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\n"
                                 "exit 1\n")
    (stub / "docker").chmod(0o755)
    for tool in ("bash", "dirname", "git", "tar", "mktemp", "rm", "sed", "grep"):
        found = shutil.which(tool)
        if found:
            (stub / tool).symlink_to(found)
    result = subprocess.run(
        [str(ROOT / ".ci" / "containers")], env={"PATH": str(stub)}, capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        ".ci/containers: no container engine (docker or podman with compose) answers here; "
        "skipping the image build and the compose run\n"
    )
    assert result.stderr == ""


ENGINE_STUB = r"""#!/bin/bash
# A container engine that answers: records each call, and plays a fleet whose check passes
# and whose bots stop after Discord refused the token.
echo "$*" >> "$CALLS"
case "$1" in
  info|build) exit 0 ;;
  inspect) echo "exited 5 2" ;;
  compose)
    shift
    case "$*" in
      version) ;;
      *" run --rm "*)
        cp .env "$DOTENV"
        echo "  HTTP server  0.0.0.0:8080 (/healthz, /metrics, callbacks): port free"
        echo "  database     PostgreSQL postgresql://animate:***@postgres:5432/animate: opened"
        echo "  metrics      METRICS_TOKEN not set: /metrics is refused (403) on 0.0.0.0" ;;
      *" ps -aq "*) echo c0ffee ;;
      *" logs "*) echo "bot-a-1  | animate-bot: Discord refused DISCORD_TOKEN" ;;
    esac ;;
esac
"""


def test_ci_container_run_checks_each_bot_and_the_restart_policy(tmp_path):
    """.ci/containers against a stand-in engine: the .env it writes is .env.example with the
    required values, each bot is checked in its container, the fleet is started, and it is
    cleaned up."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "docker").write_text(ENGINE_STUB)
    (stub / "docker").chmod(0o755)
    calls, dotenv = tmp_path / "calls", tmp_path / "dotenv"
    result = subprocess.run(
        [str(ROOT / ".ci" / "containers")],
        env={**os.environ, "PATH": f"{stub}:{os.environ['PATH']}", "CALLS": str(calls),
             "DOTENV": str(dotenv)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("the image and the compose file work as shipped")
    made = dict(line.split("=", 1) for line in dotenv.read_text().splitlines()
                if line and not line.startswith("#"))
    assert made.keys() == env_example().keys()
    assert made["HTTP_HOST"] == "127.0.0.1"  # as an owner's copy says: compose must win
    assert made["DISCORD_TOKEN"]
    assert made["SHORTAPI_DRY_RUN"] == "true"
    assert len(made["POSTGRES_PASSWORD"]) == 32
    log = calls.read_text().splitlines()
    assert log[:3] == ["info", "compose version", "build -t animate-bot:ci ."]
    assert sum(" run --rm bot-a check" in line for line in log) == 1
    assert sum(" run --rm bot-b check" in line for line in log) == 1
    assert any(line.endswith(" up -d") for line in log)
    assert log[-1].endswith("down -v --remove-orphans")
