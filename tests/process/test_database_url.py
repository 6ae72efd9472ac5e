"""The DATABASE_URL's secrets are never shown: not in the start-up log, not by ``check``,
``python -m bot.ledger check`` or ``python -m bot.storage copy``, not in a driver's error
(issue 18)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.storage import open_database
from bot.storage.dsn import problem, redact, without_secrets

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {
    line.split("=", 1)[0]
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#") and "=" in line
}
SECRET = "Zq7Secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bot:s3cr3t@db:5432/animate", "postgresql://bot:***@db:5432/animate"),
        ("postgresql://bot@db/animate", "postgresql://bot@db/animate"),
        ("postgresql://db/animate", "postgresql://db/animate"),
        # No user: asyncpg takes the password all the same.
        ("postgresql://:s3cr3t@db/animate", "postgresql://:***@db/animate"),
        # In the query, as libpq and asyncpg accept it.
        ("postgresql://bot@db/animate?password=s3cr3t&sslmode=require",
         "postgresql://bot@db/animate?password=***&sslmode=require"),
        ("postgres://bot@db/animate?sslpassword=s3cr3t",
         "postgres://bot@db/animate?sslpassword=***"),
        ("postgresql://bot@db/animate?PassWord=s3cr3t", "postgresql://bot@db/animate?PassWord=***"),
        # An '@' (or '/', '?', '#') left unencoded in the password: the user info ends at the
        # last '@', as libpq reads it.
        ("postgresql://bot:p@ss@db:5432/animate", "postgresql://bot:***@db:5432/animate"),
        ("postgresql://bot:pa/ss@db/animate", "postgresql://bot:***@db/animate"),
        ("postgresql://bot:pa?ss@db/animate", "postgresql://bot:***@db/animate"),
        ("postgresql://bot:pa#ss@db/animate", "postgresql://bot:***@db/animate"),
        ("postgresql://bot:p%40ss@h1:5432,h2:5433/animate",
         "postgresql://bot:***@h1:5432,h2:5433/animate"),
        ("postgresql://bot:s3cr3t@[::1]:5432/animate", "postgresql://bot:***@[::1]:5432/animate"),
    ],
)
def test_every_way_of_giving_a_password_is_hidden(url, shown):
    assert redact(url) == shown


_PLAIN = st.text(alphabet="abcdefghijklmnop0123456789-_.", min_size=1, max_size=12)
# Anything a password may hold, raw or percent-encoded, always with a recognisable core.
_PASSWORD = st.text(min_size=0, max_size=12).map(lambda s: SECRET + s)


@settings(max_examples=400, deadline=None)
@given(
    user=st.one_of(st.just(""), _PLAIN),
    password=_PASSWORD,
    encode=st.booleans(),
    hosts=st.lists(st.tuples(_PLAIN, st.one_of(st.none(), st.integers(1, 65535))),
                   min_size=1, max_size=3),
    database=st.one_of(st.just(""), _PLAIN),
    where=st.sampled_from(["userinfo", "password", "sslpassword", "both"]),
    extra=st.lists(st.tuples(_PLAIN, _PLAIN), max_size=3),
)
def test_no_generated_url_shows_its_password(user, password, encode, hosts, database, where,
                                             extra):
    secret = quote(password, safe="") if encode else password
    hostspec = ",".join(h if p is None else f"{h}:{p}" for h, p in hosts)
    query = [f"{k}={v}" for k, v in extra]
    userinfo = user
    if where in ("userinfo", "both"):
        userinfo = f"{user}:{secret}"
    if where in ("password", "sslpassword", "both"):
        query.append(f"{'password' if where != 'sslpassword' else 'sslpassword'}={secret}")
    at = "@" if userinfo else ""
    url = f"postgresql://{userinfo}{at}{hostspec}/{database}"
    if query:
        url += "?" + "&".join(query)
    shown = redact(url)
    assert SECRET not in shown
    assert SECRET not in without_secrets(url)
    assert SECRET not in redact(shown)
    assert shown.startswith("postgresql://")
    if user and where in ("userinfo", "both") and not encode:
        assert shown.startswith(f"postgresql://{user}:***@")


@pytest.mark.parametrize(
    ("url", "bare"),
    [
        ("postgresql://bot:s3cr3t@db:5432/animate", "postgresql://bot@db:5432/animate"),
        ("postgresql://:s3cr3t@db/animate", "postgresql://db/animate"),
        ("postgresql://bot@db/animate?password=s3cr3t&sslmode=require",
         "postgresql://bot@db/animate?sslmode=require"),
        ("postgresql://bot:p@ss@db/animate?sslpassword=x", "postgresql://bot@db/animate"),
    ],
)
def test_the_url_for_a_command_to_copy_leaves_the_secrets_out(url, bare):
    """``animate-bot backup`` names the pg_dump command for PostgreSQL (PGPASSWORD set)."""
    assert without_secrets(url) == bare


def test_anything_that_is_not_a_url_is_not_shown_either():
    assert SECRET not in redact(f"{SECRET}")  # a password pasted where the URL goes
    assert SECRET not in redact(f"postgresql:{SECRET}@db")


# --- what the commands print ---------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _urls() -> dict[str, str]:
    """URLs whose password asyncpg reads (or trips over) in each way, on a closed port (the
    driver's 'cannot reach' error) or malformed (the driver's parse error)."""
    port = _closed_port()
    return {
        "no user": f"postgresql://:{SECRET}@127.0.0.1:{port}/animate",
        "query": f"postgresql://postgres@127.0.0.1:{port}/animate?password={SECRET}",
        "sslpassword": f"postgresql://postgres@127.0.0.1:{port}/animate?sslpassword={SECRET}",
        "at in password": f"postgresql://postgres:{SECRET}@x@127.0.0.1:{port}/animate",
        "slash in password": f"postgresql://postgres:{SECRET}/x@127.0.0.1:{port}/animate",
        "bad port": f"postgresql://postgres:{SECRET}@127.0.0.1:99999/animate",
        "bad query": f"postgresql://postgres@127.0.0.1:{port}/animate?password={SECRET}&&=",
    }


def _run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    return subprocess.run([sys.executable, *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "command",
    [
        ("-m", "bot", "check"),
        ("-m", "bot"),  # the start-up
        ("-m", "bot.ledger", "check"),
        ("-m", "bot.storage", "copy", "--from", "{url}", "--to", "{sqlite}"),
        ("-m", "bot.storage", "copy", "--from", "{sqlite}", "--to", "{url}"),
        ("-m", "bot", "backup", "{tmp}/backup.db"),  # names the pg_dump command instead
    ],
)
async def test_no_command_shows_the_password_of_a_url_it_cannot_use(tmp_path, command):
    from bot.storage.sqlite import SQLiteDatabase

    sqlite = tmp_path / "source.db"
    await (await SQLiteDatabase.open(sqlite)).close()
    for case, url in _urls().items():
        args = [part.format(url=url, sqlite=sqlite, tmp=tmp_path) for part in command]
        result = await asyncio.to_thread(
            _run, *args, cwd=tmp_path, DATABASE_URL=url, DISCORD_TOKEN="t.t.t",
            SHORTAPI_KEY="k", HTTP_PORT="0",
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, (case, output)
        assert SECRET not in output, (case, output)
        assert "Traceback" not in output, (case, output)


async def test_the_database_is_named_without_its_password_once_open(postgres_url):
    parts = urlsplit(postgres_url)
    url = f"{postgres_url}?password={SECRET}&sslpassword={SECRET}"
    db = await open_database(url)
    try:
        assert SECRET not in db.where
        assert db.where.startswith(f"postgresql://{parts.username}@")
    finally:
        await db.close()


@pytest.mark.parametrize("url", [
    "postgresql://bot:p%40ss@db:5432/animate",
    "postgresql://bot@[::1]:5432/animate",
    "postgresql://bot@h1:5432,h2:5433/animate?sslmode=require",
    "postgresql:///animate?host=/var/run/postgresql",
    "postgres://db/animate",
])
def test_a_well_formed_url_is_read_as_it_is(url):
    assert problem(url) is None


@pytest.mark.parametrize(("url", "why"), [
    ("postgresql://bot:p@Zq@db/animate", "%40"),
    ("postgresql://bot:pa/Zq@db/animate", "%2F"),
    ("postgresql://bot@db:99999/animate", "port"),
    ("postgresql://bot@db:x/animate", "port"),
    ("postgresql://bot@[::1/animate", "IPv6"),
    ("postgresql://bot@db/animate?password", "query"),
])
def test_a_malformed_url_is_refused_in_words_that_quote_none_of_it(url, why):
    said = problem(url)
    assert said is not None
    assert why in said
    assert "Zq" not in said
