"""The command line as a server owner meets it: `python -m bot` / `animate-bot` as processes.

No test here reaches the internet: Discord is the fake on 127.0.0.1, a closed local port, or a
host under `.invalid` (a name that never resolves, RFC 2606).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.fakes.fake_discord import FakeDiscord
from tests.helpers import closed_port

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {
    line.split("=", 1)[0]
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#") and "=" in line
}
TOKEN = "cli-test-token.abc.def"


def clean_env(**env: str) -> dict[str, str]:
    """The test's environment without any of the bot's settings, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    return {**base, **env}


def animate_bot(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=clean_env(**env), cwd=cwd,
        capture_output=True, text=True, timeout=timeout, check=False,
    )


async def animate_bot_async(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> tuple[int, str]:
    """``python -m bot`` while the test's event loop serves the fakes; (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=clean_env(**env), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


@contextlib.contextmanager
def listener() -> Iterator[tuple[str, Callable[[], int]]]:
    """A local port that records whether anything tried to connect: (base URL, connections())."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]

    def connections() -> int:
        count = 0
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    try:
        yield f"127.0.0.1:{port}", connections
    finally:
        sock.close()


def error_line(stderr: str) -> str:
    """The one line a failed start-up ends with (log lines before it are the normal log)."""
    assert "Traceback" not in stderr, stderr
    assert "Event loop is closed" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("animate-bot:")]
    assert len(lines) == 1, stderr
    assert stderr.rstrip().endswith(lines[0]), stderr
    return lines[0]


def test_help_and_version_start_nothing(tmp_path):
    with listener() as (address, connections):
        (tmp_path / ".env").write_text(
            f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_KEY=k\nDISCORD_API_BASE_URL=http://{address}/api\n"
            f"DISCORD_GATEWAY_URL=ws://{address}/\n"
        )
        help_ = animate_bot("--help", cwd=tmp_path)
        version = animate_bot("--version", cwd=tmp_path)
        check_help = animate_bot("check", "--help", cwd=tmp_path)
        assert connections() == 0
    assert help_.returncode == 0, help_.stderr
    assert help_.stdout.startswith("usage: animate-bot")
    for word in ("check", "run", "--env-file", "--version"):
        assert word in help_.stdout
    assert version.returncode == 0
    assert version.stdout.strip() == "animate-bot 0.1.0"
    assert check_help.returncode == 0
    assert "connects to nothing" in " ".join(check_help.stdout.split())
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("args", [["--bogus"], ["start"], ["check", "extra"], ["--env-file"]])
def test_unknown_arguments_are_an_error_with_exit_2(tmp_path, args):
    with listener() as (address, connections):
        result = animate_bot(
            *args, cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k",
            DISCORD_API_BASE_URL=f"http://{address}/api",
        )
        assert connections() == 0
    assert result.returncode == 2
    assert "usage: animate-bot" in result.stderr
    assert "animate-bot: error:" in result.stderr
    assert not (tmp_path / "data").exists()


def test_console_script_check_tells_what_it_would_do_and_connects_nowhere(tmp_path):
    script = Path(sys.executable).with_name("animate-bot")
    assert script.exists(), "pip install -e . installs the animate-bot console script"
    home = tmp_path / "srv"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with listener() as (address, connections):
        (home / "animate.env").write_text(
            f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_KEY=very-secret-key\n"
            f"DATABASE_PATH=state/animate.db\n"
            f"SHORTAPI_BASE_URL=http://{address}\nDISCORD_API_BASE_URL=http://{address}/api\n"
            f"DISCORD_GATEWAY_URL=ws://{address}/\nCALLBACK_PUBLIC_URL=https://bot.example\n"
            "HTTP_HOST=0.0.0.0\nHTTP_PORT=9123\nSHORTAPI_DRY_RUN=true\n"
            "DEFAULT_DAILY_LIMIT_USD=1.50\nMAX_ACTIVE_JOBS=1000\n"
        )
        result = subprocess.run(
            [str(script), "--env-file", str(home / "animate.env"), "check"],
            env=clean_env(), cwd=elsewhere, capture_output=True, text=True, timeout=60,
            check=False,
        )
        assert connections() == 0
    assert result.returncode == 0, result.stderr
    out = result.stdout
    database = home / "state" / "animate.db"
    assert database.exists()
    assert not (elsewhere / "state").exists()
    assert f"settings     {home / 'animate.env'}" in out
    assert f"SQLite file {database}: opened, new" in out
    assert "HTTP server  0.0.0.0:9123" in out
    assert "callbacks    on: https://bot.example/callbacks/<token>" in out
    assert "dry run      on" in out
    assert "each member $1.50 a day" in out
    assert "1000 jobs rendering at once" in out
    assert "Nothing was sent to Discord or ShortAPI" in out
    assert TOKEN not in out + result.stderr
    assert "very-secret-key" not in out + result.stderr
    # The second look finds the history the first one created.
    again = animate_bot("check", "--env-file", str(home / "animate.env"), cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert "opened, 0 jobs recorded" in again.stdout


def test_check_warns_when_polling_cannot_keep_up(tmp_path):
    result = animate_bot(
        "check", cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k", MAX_ACTIVE_JOBS="1000",
    )
    assert result.returncode == 0, result.stderr
    assert "warning: Without CALLBACK_PUBLIC_URL" in result.stdout


@pytest.mark.parametrize(
    "where", ["file in /proc", "directory", "folder in /proc", "folder under a file"]
)
@pytest.mark.parametrize("command", [[], ["check"]])
def test_unusable_database_path_is_one_line_and_exit_2(tmp_path, where, command):
    (tmp_path / "a-file").write_text("not a folder")
    path = {
        "file in /proc": "/proc/foo.db",
        "directory": str(tmp_path),
        "folder in /proc": "/proc/animate-test/data/foo.db",
        "folder under a file": str(tmp_path / "a-file" / "data" / "animate.db"),
    }[where]
    with listener() as (address, connections):
        result = animate_bot(
            *command, cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k", DATABASE_PATH=path,
            DISCORD_API_BASE_URL=f"http://{address}/api", DISCORD_GATEWAY_URL=f"ws://{address}/",
        )
        assert connections() == 0
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr  # nothing but the one line
    line = error_line(result.stderr)
    assert f"DATABASE_PATH: cannot use {path}" in line


def test_missing_env_file_is_one_line_and_exit_2(tmp_path):
    result = animate_bot("--env-file", "nowhere.env", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "animate-bot: --env-file nowhere.env: no such file\n"


@pytest.mark.parametrize("target", ["refused", "dns"])
def test_discord_unreachable_at_start_is_one_line_and_exit_1(tmp_path, target):
    port = closed_port()
    base = {
        "refused": f"http://127.0.0.1:{port}/api/v10",
        "dns": "http://discord.invalid/api/v10",
    }[target]
    result = animate_bot(
        cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k", DISCORD_API_BASE_URL=base,
        DATABASE_PATH=str(tmp_path / "a.db"),
    )
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert f"cannot reach Discord at {base}" in line
    assert {"refused": f"127.0.0.1:{port} refused",
            "dns": "DNS lookup of discord.invalid failed"}[target] in line
    assert "DISCORD_API_BASE_URL" in line
    assert TOKEN not in result.stderr


@pytest.fixture
async def fake():
    async with FakeDiscord() as fake:
        yield fake


async def test_discord_outage_at_start_is_one_line_and_exit_1(fake, tmp_path):
    fake.fail_next("GET", r"^/users/@me$", 503, {"message": "upstream down", "code": 0})
    code, output = await animate_bot_async(
        cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k",
        DISCORD_API_BASE_URL=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url,
        DATABASE_PATH=str(tmp_path / "a.db"), HTTP_PORT="0",
    )
    assert code == 1
    line = error_line(output)
    assert f"Discord answered HTTP 503 at {fake.api_base}" in line
    assert "discordstatus.com" in line


async def test_gateway_unreachable_at_start_is_one_line_and_exit_1(fake, tmp_path):
    gateway = f"ws://127.0.0.1:{closed_port()}"
    code, output = await animate_bot_async(
        cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k",
        DISCORD_API_BASE_URL=fake.api_base, DISCORD_GATEWAY_URL=gateway,
        DATABASE_PATH=str(tmp_path / "a.db"), HTTP_PORT="0",
    )
    assert code == 1
    line = error_line(output)
    assert f"cannot reach Discord at {gateway}" in line
    assert "refused" in line
    assert "DISCORD_GATEWAY_URL" in line
    assert fake.identify_count == 0


async def test_http_port_taken_with_callbacks_refuses_to_start(fake, tmp_path):
    with listener() as (address, _connections):
        port = address.rsplit(":", 1)[1]
        code, output = await animate_bot_async(
            cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k",
            DISCORD_API_BASE_URL=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url,
            DATABASE_PATH=str(tmp_path / "a.db"), HTTP_PORT=port,
            CALLBACK_PUBLIC_URL="https://bot.example",
        )
    assert code == 2
    line = error_line(output)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "CALLBACK_PUBLIC_URL" in line
    assert fake.identify_count == 0
    assert fake.command_syncs == 0


async def test_dry_run_starts_without_shortapi_key_and_says_where_its_database_is(fake, tmp_path):
    """Also: relative DATABASE_PATH from the .env folder, and no voice-library warnings."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".env").write_text(
        f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_DRY_RUN=true\nDATABASE_PATH=data/animate.db\n"
        f"DISCORD_API_BASE_URL={fake.api_base}\nDISCORD_GATEWAY_URL={fake.gateway_url}\n"
        "HTTP_PORT=0\n"
    )
    below = home / "logs"
    below.mkdir()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=clean_env(), cwd=below,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.wait_for(fake.ready.wait(), 30)
        await fake.wait_for(lambda: fake.global_commands, timeout=30)
        process.terminate()
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = out.decode()
    assert process.returncode == 0, log
    assert (home / "data" / "animate.db").exists()
    assert not (below / "data").exists()
    assert f"settings from {home / '.env'}" in log
    assert f"database: {home / 'data' / 'animate.db'}" in log
    assert "SHORTAPI_KEY is not needed" in log
    assert "PyNaCl" not in log
    assert "davey" not in log
    assert "Traceback" not in log


def test_ledger_check_finds_the_bots_database_by_the_same_rule(tmp_path):
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_DRY_RUN=true\nDATABASE_PATH=state/animate.db\n"
    )
    below = tmp_path / "somewhere" / "else"
    below.mkdir(parents=True)
    created = animate_bot("check", cwd=below)
    assert created.returncode == 0, created.stderr
    database = tmp_path / "state" / "animate.db"
    result = subprocess.run(
        [sys.executable, "-m", "bot.ledger", "check"], env=clean_env(), cwd=below,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ledger check of {database}: 0 jobs, OK"
    (tmp_path / ".env").rename(tmp_path / "animate.env")
    named = subprocess.run(
        [sys.executable, "-m", "bot.ledger", "check", "--env-file", str(tmp_path / "animate.env")],
        env=clean_env(), cwd=below, capture_output=True, text=True, timeout=60, check=False,
    )
    assert named.returncode == 0, named.stderr
    assert named.stdout.strip() == f"ledger check of {database}: 0 jobs, OK"


async def test_check_on_postgresql_hides_the_password_and_refusals_are_one_line(
    tmp_path, postgres_url
):
    """A wrong database name is a setting to fix (exit 2); a server that is down or not up yet
    is worth retrying (exit 1, so systemd's Restart= tries again)."""
    parts = urlsplit(postgres_url)
    with_password = parts._replace(netloc=f"{parts.username or 'postgres'}:s3cret@"
                                          f"{parts.hostname}:{parts.port or 5432}")
    cases = {
        "ok": (urlunsplit(with_password), 0),
        "refused": (urlunsplit(with_password._replace(path=parts.path + "_missing")), 2),
        "down": (f"postgresql://postgres:s3cret@127.0.0.1:{closed_port()}/animate", 1),
    }
    for case, (url, code) in cases.items():
        result = await asyncio.to_thread(
            animate_bot, "check", cwd=tmp_path, DISCORD_TOKEN=TOKEN, SHORTAPI_KEY="k",
            DATABASE_URL=url,
        )
        assert result.returncode == code, (case, result.stderr)
        assert "s3cret" not in result.stdout + result.stderr
        if case == "ok":
            assert "database     PostgreSQL postgresql://" in result.stdout
            assert "opened, 0 jobs recorded" in result.stdout
            continue
        line = error_line(result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert line.startswith("animate-bot: DATABASE_URL: ")
        assert {"refused": "refused the bot", "down": "cannot reach PostgreSQL"}[case] in line
