"""The commands an owner runs on the second day (cron's `ledger check`, `storage copy`, `check`,
`backup`) as processes: a documented exit code and one line on bad input, never a traceback.

`python -m bot.ledger check`: 0 clean, 1 differences found, 2 could not check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.config import setting_names
from bot.ledger import Ledger
from bot.storage import POSTGRES_EXTRA

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {
    line.split("=", 1)[0]
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#") and "=" in line
}
TOKEN = "owner-test-token.abc.def"


def run(module: str, *args: str, cwd: Path, prelude: str = "", **env: str
        ) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` with none of the bot's settings from the test's environment.
    ``prelude``: Python run first in the same interpreter (to hide an installed package)."""
    base = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    command = [sys.executable, "-m", module, *args]
    if prelude:
        command = [sys.executable, "-c", f"{prelude}\nimport runpy\n"
                   f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)", *args]
    return subprocess.run(command, env={**base, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def one_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The failed command's only output: one line on stderr, nothing on stdout."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "", result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def missing_database(postgres_url: str) -> str:
    parts = urlsplit(postgres_url)
    return urlunsplit(parts._replace(path=parts.path + "_missing"))


def missing_role(postgres_url: str) -> str:
    parts = urlsplit(postgres_url)
    return urlunsplit(parts._replace(netloc=f"nosuchrole@{parts.hostname}:{parts.port or 5432}"))


async def new_sqlite(path: Path) -> Path:
    async with await Ledger.open(path):
        pass
    return path


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """``path`` cannot be written while the block runs: read-only for a normal user, immutable
    (chattr +i) for root, which writes read-only files; skipped where neither can be done."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True,
                                        check=False).returncode != 0:
        pytest.skip("running as root without chattr +i: no way to make a file unwritable")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


# --- python -m bot.ledger check ------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "mysql", "garbage", "directory"])
def test_ledger_check_that_cannot_check_says_why_in_one_line_and_exits_2(tmp_path, case):
    (tmp_path / "garbage.db").write_bytes(b"this is not SQLite\n" * 100)
    (tmp_path / "folder.db").mkdir()
    args, why = {
        "missing": (["--database", "nope.db"], "no database at nope.db"),
        "mysql": (["--database-url", "mysql://u:pw@host/db"], "must start with postgresql://"),
        "garbage": (["--database", "garbage.db"], "not an SQLite database"),
        "directory": (["--database", "folder.db"], "a folder, not a file"),
    }[case]
    line = one_line(run("bot.ledger", "check", *args, cwd=tmp_path))
    assert line.startswith("python -m bot.ledger check: could not check: ")
    assert why in line
    assert "pw" not in line


def test_ledger_check_of_the_bots_database_when_there_is_none_exits_2(tmp_path):
    (tmp_path / ".env").write_text("DATABASE_PATH=state/animate.db\n")
    line = one_line(run("bot.ledger", "check", cwd=tmp_path))
    assert line.endswith(f"could not check: no database at {tmp_path / 'state' / 'animate.db'}")
    assert not (tmp_path / "state").exists()  # a check never creates a database


async def test_ledger_check_of_a_postgresql_database_or_role_that_does_not_exist_exits_2(
    tmp_path, postgres_url
):
    for url, why in ((missing_database(postgres_url), "does not exist"),
                     (missing_role(postgres_url), 'role "nosuchrole" does not exist')):
        result = await asyncio.to_thread(run, "bot.ledger", "check", "--database-url", url,
                                         cwd=tmp_path)
        line = one_line(result)
        assert "could not check: PostgreSQL at postgresql://" in line
        assert why in line


async def test_ledger_check_never_migrates_an_older_database_it_says_so_and_exits_2(
    tmp_path, database_url
):
    """A check is read-only: run with a newer bot's code against the fleet's database (an
    upgrade half done), it must not change the schema under the processes still running."""
    from bot.storage import is_postgres
    from bot.storage.base import migrations

    engine = "postgres" if is_postgres(database_url) else "sqlite"
    older = len(migrations(engine)) - 1
    args = ["--database-url", database_url] if engine == "postgres" else [
        "--database", database_url]
    if engine == "sqlite":
        with contextlib.closing(sqlite3.connect(database_url)) as db:
            for version, script in enumerate(migrations(engine)[:older], start=1):
                db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    else:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                               "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            for version, script in enumerate(migrations(engine)[:older], start=1):
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        finally:
            await conn.close()
    line = one_line(await asyncio.to_thread(run, "bot.ledger", "check", *args, cwd=tmp_path))
    assert line.startswith("python -m bot.ledger check: could not check: ")
    assert f"its schema is at version {older}, older than this bot's ({older + 1})" in line
    if engine == "sqlite":
        with contextlib.closing(sqlite3.connect(database_url)) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == older
    else:
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT MAX(version) FROM schema_version") == older
        finally:
            await conn.close()


# --- python -m bot.storage copy ------------------------------------------------------------

async def test_copy_from_a_file_that_is_not_sqlite_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "garbage.db").write_bytes(b"\x00not a database" * 200)
    result = await asyncio.to_thread(
        run, "bot.storage", "copy", "--from", "garbage.db", "--to",
        f"sqlite:///{tmp_path}/new.db", cwd=tmp_path,
    )
    assert "not an SQLite database" in one_line(result)


async def test_copy_to_a_postgresql_database_or_role_that_does_not_exist_is_one_line_and_exit_2(
    tmp_path, postgres_url
):
    source = await new_sqlite(tmp_path / "animate.db")
    for url, why in ((missing_database(postgres_url), "does not exist"),
                     (missing_role(postgres_url), 'role "nosuchrole" does not exist')):
        result = await asyncio.to_thread(run, "bot.storage", "copy", "--from", str(source),
                                         "--to", url, cwd=tmp_path)
        line = one_line(result)
        assert line.startswith("copy refused: PostgreSQL at postgresql://")
        assert why in line


# --- PostgreSQL without asyncpg --------------------------------------------------------------

HIDE_ASYNCPG = "import sys\nsys.modules['asyncpg'] = None"


@pytest.mark.parametrize(("module", "args"), [
    ("bot", ["check"]), ("bot", []), ("bot.ledger", ["check"]),
])
def test_postgresql_without_asyncpg_names_the_install_command(tmp_path, module, args):
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_DRY_RUN=true\n"
        "DATABASE_URL=postgresql://animate:pw@127.0.0.1:5432/animate\n"
        # Nothing may be reached if the start went further than it should.
        "DISCORD_API_BASE_URL=http://127.0.0.1:9/api\nDISCORD_GATEWAY_URL=ws://127.0.0.1:9/\n"
    )
    line = one_line(run(module, *args, cwd=tmp_path, prelude=HIDE_ASYNCPG))
    assert line.endswith(f"PostgreSQL needs asyncpg, which is not installed: {POSTGRES_EXTRA}")
    assert POSTGRES_EXTRA == "pip install -e '.[postgres]'"  # as the README installs


# --- a database file the bot cannot write ------------------------------------------------------

@pytest.mark.parametrize("command", [["check"], []])
async def test_a_database_file_that_cannot_be_written_is_found_at_start(tmp_path, command):
    """The folder is writable, the file is not: reading works, so only a write finds it."""
    database = await new_sqlite(tmp_path / "data" / "animate.db")
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_DRY_RUN=true\n"
        "DISCORD_API_BASE_URL=http://127.0.0.1:9/api\nDISCORD_GATEWAY_URL=ws://127.0.0.1:9/\n"
    )
    with unwritable(database):
        result = await asyncio.to_thread(run, "bot", *command, cwd=tmp_path)
    line = one_line(result)
    assert line == (
        f"animate-bot: DATABASE_PATH: cannot use {database} as the database (the file is "
        "read-only or immutable: it cannot be written); it must name a file in a folder the "
        "bot can create and write"
    )


# --- animate-bot check: the port, the metrics token, the leases, where .env was looked for ----

BASE_ENV = (
    f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_DRY_RUN=true\n"
    "DISCORD_API_BASE_URL=http://127.0.0.1:9/api\nDISCORD_GATEWAY_URL=ws://127.0.0.1:9/\n"
)


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_check_reports_the_metrics_token_the_leases_and_a_free_port(tmp_path):
    (tmp_path / ".env").write_text(f"{BASE_ENV}HTTP_PORT=0\nLEASE_SECONDS=12\n")
    result = run("bot", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "leases       LEASE_SECONDS=12: renewed every 4 s" in out
    assert "within 12 s" in out
    assert "metrics      METRICS_TOKEN not set: /metrics is open to this machine only" in out
    assert "a test write worked" in out
    assert "warning" not in out
    with_token = run("bot", "check", cwd=tmp_path, METRICS_TOKEN="s3cret-metrics",
                     HTTP_HOST="0.0.0.0")
    assert "metrics      METRICS_TOKEN set" in with_token.stdout
    assert "s3cret-metrics" not in with_token.stdout + with_token.stderr


def test_check_says_metrics_will_be_refused_on_a_public_address_without_a_token(tmp_path):
    (tmp_path / ".env").write_text(f"{BASE_ENV}HTTP_HOST=0.0.0.0\nHTTP_PORT=0\n")
    result = run("bot", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "/metrics is refused (403) on 0.0.0.0" in result.stdout
    assert "warning: /metrics will be refused on 0.0.0.0 without METRICS_TOKEN" in result.stdout


def test_check_tries_the_http_port_and_refuses_when_callbacks_need_it(tmp_path):
    with port_in_use() as port:
        (tmp_path / ".env").write_text(f"{BASE_ENV}HTTP_PORT={port}\n")
        polling = run("bot", "check", cwd=tmp_path)
        callbacks = run("bot", "check", cwd=tmp_path, CALLBACK_PUBLIC_URL="https://bot.example")
    assert polling.returncode == 0, polling.stderr
    assert f"HTTP server  127.0.0.1:{port} (/healthz, /metrics, callbacks): cannot listen " \
           "(Address already in use" in polling.stdout
    assert "the bot would run without /healthz and /metrics" in polling.stdout
    line = one_line(callbacks)
    assert line.startswith(f"animate-bot: the HTTP server cannot listen on 127.0.0.1:{port}")
    assert "CALLBACK_PUBLIC_URL needs it" in line
    (tmp_path / ".env").write_text(f"{BASE_ENV}HTTP_PORT={port}\n")
    freed = run("bot", "check", cwd=tmp_path)  # the socket is closed now
    assert f"127.0.0.1:{port} (/healthz, /metrics, callbacks): port free" in freed.stdout


def test_a_missing_setting_says_where_env_was_looked_for(tmp_path):
    below = tmp_path / "deep" / "down"
    below.mkdir(parents=True)
    none = one_line(run("bot", "check", cwd=below))
    assert none == ("animate-bot: DISCORD_TOKEN is not set: put it in the environment or in .env "
                    f"(see .env.example); no .env found from {below} upwards")
    (tmp_path / ".env").write_text("SHORTAPI_DRY_RUN=false\n")
    found = one_line(run("bot", "check", cwd=below))
    assert found.endswith(f"; read {tmp_path / '.env'}")


# --- keys of .env that are no setting ------------------------------------------------------------

def test_setting_names_are_the_settings_of_env_example():
    assert setting_names() == SETTING_NAMES


def test_a_misspelt_key_in_env_is_named_with_the_nearest_setting(tmp_path):
    (tmp_path / ".env").write_text(f"{BASE_ENV}HTTP_PORT=0\nDEFAULT_DAILY_LIMT_USD=5.00\n")
    result = run("bot", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (f"warning: {tmp_path / '.env'}: DEFAULT_DAILY_LIMT_USD is not a setting and is "
            "ignored (did you mean DEFAULT_DAILY_LIMIT_USD?)") in result.stdout
    assert "each member $2.00 a day" in result.stdout  # the default, not the misspelt 5.00


def test_a_misspelt_key_is_named_before_the_setting_it_left_missing(tmp_path):
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={TOKEN}\nSHORTAPI_DRYRUN=true\n")
    result = run("bot", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    warning, error = result.stderr.splitlines()
    assert warning == (f"animate-bot: warning: {tmp_path / '.env'}: SHORTAPI_DRYRUN is not a "
                       "setting and is ignored (did you mean SHORTAPI_DRY_RUN?)")
    assert error.startswith("animate-bot: SHORTAPI_KEY is not set")


def test_the_running_bot_logs_misspelt_keys_in_plain_lines(tmp_path):
    """Logs go to files and collectors (journald, docker logs): no colour codes unless stderr
    is a terminal, even where discord.py would colour them (inside Docker)."""
    (tmp_path / ".env").write_text(f"{BASE_ENV}HTTP_PORT=0\nMAX_ACTIVE_JOB=3\n")
    result = run("bot", cwd=tmp_path)
    assert result.returncode == 1  # nothing answers on 127.0.0.1:9
    assert "MAX_ACTIVE_JOB is not a setting and is ignored (did you mean MAX_ACTIVE_JOBS?)" \
        in result.stderr
    assert "\x1b[" not in result.stderr
    assert "] [WARNING ] bot: " in result.stderr


# --- animate-bot backup PATH ---------------------------------------------------------------------

async def test_backup_of_a_live_database_is_consistent(tmp_path):
    """A writer commits pairs of rows as fast as it can during the backup: the copy holds whole
    transactions only, passes SQLite's integrity check and the ledger check."""
    database = await new_sqlite(tmp_path / "data" / "animate.db")
    (tmp_path / ".env").write_text(f"{BASE_ENV}")
    stop, busy = threading.Event(), threading.Event()
    written = [0]

    def write() -> None:
        with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as db:
            db.execute("PRAGMA busy_timeout = 5000")
            while not stop.is_set():
                n = written[0]
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"a{n}", "x" * 500))
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"b{n}", "x" * 500))
                db.execute("COMMIT")
                written[0] = n + 1
                if n == 200:
                    busy.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert await asyncio.to_thread(busy.wait, 60)
        result = await asyncio.to_thread(run, "bot", "backup", "backups.db", cwd=tmp_path)
        during = written[0]
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "backups.db"
    assert result.stdout.strip().startswith(f"backed up 0 jobs into {copy} (")
    with contextlib.closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        a, b = (db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE ?", (f"{side}%",))
                .fetchone()[0] for side in "ab")
    assert a == b  # whole transactions only
    assert 200 <= a <= during
    checked = run("bot.ledger", "check", "--database", str(copy), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert not list(tmp_path.glob(".*.partial"))


async def test_backup_into_a_folder_makes_a_time_stamped_file(tmp_path):
    await new_sqlite(tmp_path / "data" / "animate.db")
    (tmp_path / ".env").write_text(BASE_ENV)
    (tmp_path / "backups").mkdir()
    result = run("bot", "backup", "backups", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [made] = (tmp_path / "backups").iterdir()
    assert made.name.startswith("animate-")
    assert made.suffix == ".db"


@pytest.mark.parametrize("case", ["no database", "not sqlite", "exists", "no folder",
                                  "the database itself", "postgresql"])
async def test_backup_that_cannot_be_made_is_one_line_and_exit_2(tmp_path, case):
    database = tmp_path / "data" / "animate.db"
    if case != "no database":
        await new_sqlite(database)
    if case == "not sqlite":
        database.write_bytes(b"not a database at all" * 100)
    (tmp_path / "exists.db").write_text("keep me")
    env = {"postgresql": {"DATABASE_URL": "postgresql://animate:pw@db.invalid:5432/animate"}}
    path = {"exists": "exists.db", "no folder": "missing/animate.db",
            "the database itself": "data/animate.db"}.get(case, "new.db")
    line = one_line(run("bot", "backup", path, cwd=tmp_path, **env.get(case, {})))
    assert line.startswith("animate-bot: backup: ")
    assert {
        "no database": f"no database at {database}",
        "not sqlite": "not an SQLite database",
        "exists": "exists.db already exists",
        "no folder": "missing is not a folder",
        "the database itself": "is the database itself",
        "postgresql": "pg_dump --format=custom --file=animate.dump "
                      "'postgresql://animate@db.invalid:5432/animate'",
    }[case] in line
    assert "pw" not in line
    assert (tmp_path / "exists.db").read_text() == "keep me"
    assert not (tmp_path / "new.db").exists()
    assert not list(tmp_path.rglob(".*.partial"))


@pytest.mark.parametrize("command", [["check"], []])
async def test_a_database_migrated_by_a_newer_bot_is_one_line_and_exit_2(tmp_path, command):
    """After a rollback of the code (or an old process left running through an upgrade)."""
    database = await new_sqlite(tmp_path / "data" / "animate.db")
    with contextlib.closing(sqlite3.connect(database)) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute(f"PRAGMA user_version = {version + 1}")
    (tmp_path / ".env").write_text(BASE_ENV)
    line = one_line(await asyncio.to_thread(run, "bot", *command, cwd=tmp_path))
    assert f"its schema is at version {version + 1}, newer than this bot knows ({version})" in line
    assert "restore a backup taken before the upgrade" in line
