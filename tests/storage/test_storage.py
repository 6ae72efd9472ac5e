"""The storage engines: URL choice, migrations, PostgreSQL specifics, reconnecting, copying."""

import asyncio
import subprocess
import sys
from dataclasses import replace

import pytest

from bot.errors import ConfigError, DatabaseUnavailable
from bot.ledger import Ledger
from bot.storage import open_database, sqlite_path
from bot.storage.base import RUNTIME_TABLES, TABLES, migrations, redact
from bot.storage.postgres import numbered
from tests.helpers import GUILD, NOW, USER, make_quote

ADMIN = 9


def test_placeholders_are_numbered_outside_string_literals():
    sql = "SELECT '?' AS q, a FROM t WHERE b = ? AND c IN (?, ?) AND d = 'x?y'"
    assert numbered(sql) == "SELECT '?' AS q, a FROM t WHERE b = $1 AND c IN ($2, $3) AND d = 'x?y'"


def test_urls_choose_the_engine_and_passwords_are_never_shown():
    assert str(sqlite_path("sqlite:///data/a.db")) == "data/a.db"
    assert str(sqlite_path("sqlite:////abs/a.db")) == "/abs/a.db"
    assert str(sqlite_path("data/a.db")) == "data/a.db"
    with pytest.raises(ConfigError, match="postgresql://"):
        sqlite_path("mysql://root@x/db")
    assert redact("postgresql://bot:s3cr3t@db:5432/animate") == "postgresql://bot:***@db:5432/animate"
    assert redact("postgresql://bot@db/animate") == "postgresql://bot@db/animate"


def test_both_engines_have_the_same_migration_versions():
    assert len(migrations("sqlite")) == len(migrations("postgres")) >= 3


async def test_the_schema_is_migrated_once_and_versioned(database_url):
    async with await Ledger.open(database_url) as ledger:
        version = await ledger.db.schema_version()
    async with await Ledger.open(database_url) as ledger:  # reopening migrates nothing twice
        assert await ledger.db.schema_version() == version == len(migrations(ledger.db.engine))


async def test_copy_knows_every_table_of_the_schema(database_url):
    async with await Ledger.open(database_url) as ledger:
        assert await ledger.db.table_names() == set(TABLES) | set(RUNTIME_TABLES)


async def test_several_processes_opening_a_new_postgres_database_migrate_it_once(postgres_url):
    databases = await asyncio.gather(*(open_database(postgres_url) for _ in range(4)))
    try:
        rows = await databases[0].fetchall("SELECT version FROM schema_version ORDER BY 1")
        assert [r["version"] for r in rows] == list(range(1, len(migrations("postgres")) + 1))
    finally:
        for db in databases:
            await db.close()


async def test_postgres_refuses_to_truncate_the_ledger_or_the_audit(postgres_url):
    import asyncpg

    async with await Ledger.open(postgres_url):
        pass
    conn = await asyncpg.connect(postgres_url)
    try:
        for table in ("ledger", "audit"):
            with pytest.raises(asyncpg.RaiseError, match=f"{table} is append-only"):
                await conn.execute(f"TRUNCATE {table} CASCADE")
    finally:
        await conn.close()


async def test_discord_ids_and_mills_keep_64_bits(database_url):
    big = 1_300_000_000_000_000_000  # a snowflake of the 2030s
    async with await Ledger.open(database_url) as ledger:
        quote = make_quote(guild_id=big, user_id=big + 1)
        await ledger.create_quote(quote)
        job = await ledger.confirm_quote(quote.id, big + 1, NOW, job_timeout=60)
        assert (job.guild_id, job.user_id) == (big, big + 1)
        assert (await ledger.usage(big, big + 1, NOW)).today_mills == quote.price_mills


# -- reconnecting ---------------------------------------------------------------------------


class Proxy:
    """A TCP proxy in front of PostgreSQL that can be taken down and brought back, like a
    server restart seen from the bot."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links |= {writer, up_writer}

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links -= {writer, up_writer}


async def test_the_pool_survives_a_database_restart_and_says_unavailable_meanwhile(postgres_url):
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    async with await Ledger.open(proxied) as ledger:
        quote = make_quote()
        await ledger.create_quote(quote)
        await proxy.stop()  # the server goes away, connections and all
        with pytest.raises(DatabaseUnavailable) as caught:
            await ledger.confirm_quote(quote.id, USER, NOW, job_timeout=60)
        assert "Try again shortly" in str(caught.value)
        with pytest.raises(DatabaseUnavailable):
            await ledger.get_quote(quote.id)
        assert not await _pings(ledger)
        await proxy.start()  # back, on the same port
        job = await ledger.confirm_quote(quote.id, USER, NOW, job_timeout=60)
        assert job.state == "reserved"
        assert await ledger.check() == []
    await proxy.stop()


async def _pings(ledger: Ledger) -> bool:
    try:
        return await ledger.ping()
    except DatabaseUnavailable:
        return False


async def test_connections_dropped_by_the_server_are_replaced_without_an_error(postgres_url):
    async with await Ledger.open(postgres_url) as ledger:
        await ledger.create_quote(quote := make_quote())
        import asyncpg

        from tests.postgres import PG_ADMIN_URL

        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            name = postgres_url.rsplit("/", 1)[1]
            ended = await admin.fetchval(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1", name,
            )
            assert ended >= 1
        finally:
            await admin.close()
        job = await ledger.confirm_quote(quote.id, USER, NOW, job_timeout=60)
        assert job.state == "reserved"


# -- copying --------------------------------------------------------------------------------


async def _history(ledger: Ledger) -> None:
    """A little of everything: settings, overrides, channels, delivered, failed, refunded."""
    await ledger.set_meta("command_hash", "abc")
    p = ledger.policies
    await p.set_limit(GUILD, ADMIN, NOW, period="daily", value=5000)
    await p.set_limit(GUILD, ADMIN, NOW, period="monthly", value=9000, member_id=USER)
    await p.set_channel(GUILD, ADMIN, NOW, 3000, True)
    await p.set_timezone(GUILD, ADMIN, NOW, "Europe/Paris")
    await p.set_blocked_words(GUILD, ADMIN, NOW, ["gore", "spoiler alert"], add=True)
    jobs = []
    for n in range(4):
        quote = replace(make_quote(user_id=USER + n % 2), dry_run=n == 3)
        await ledger.create_quote(quote)
        jobs.append(await ledger.confirm_quote(quote.id, quote.user_id, NOW, job_timeout=60))
    await ledger.create_quote(make_quote())  # still open
    for job in (jobs[0], jobs[3]):
        await ledger.mark_submitting(job.id, NOW)
        await ledger.mark_running(job.id, f"prov-{job.id}", None, NOW)
        await ledger.mark_succeeded(job.id, "https://v/x.mp4", NOW)
        await ledger.settle(job.id, 77, NOW)
    await ledger.refund(jobs[1].id, "failed", "provider said no", NOW, only_from=("reserved",))
    await ledger.admin_refund(jobs[0].id, GUILD, ADMIN, "blurry", NOW)


def _rows(found):
    return sorted(repr(sorted((key, row[key]) for key in row.keys())) for row in found)  # noqa: SIM118


async def _run_copy(source, destination):
    command = [sys.executable, "-m", "bot.storage", "copy", "--from", str(source), "--to",
               destination]
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                   check=False)


async def test_copy_moves_everything_from_sqlite_to_postgres_and_checks_both(
    tmp_path, postgres_url
):
    source = tmp_path / "animate.db"
    async with await Ledger.open(source) as ledger:
        await _history(ledger)
        before = {table: await ledger.db.fetchall(f"SELECT * FROM {table}") for table in TABLES}
    done = await _run_copy(source, postgres_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "totals agree" in done.stdout
    assert "ledger check of the destination: 4 jobs, OK" in done.stdout
    async with await Ledger.open(postgres_url) as ledger:
        for table in TABLES:
            after = await ledger.db.fetchall(f"SELECT * FROM {table}")
            assert _rows(after) == _rows(before[table]), table
        assert (await ledger.policies.get(GUILD)).timezone == "Europe/Paris"
        assert await ledger.policies.blocked_words(GUILD) == ["gore", "spoiler alert"]
        quote = make_quote(user_id=USER + 5)
        await ledger.create_quote(quote)
        job = await ledger.confirm_quote(quote.id, USER + 5, NOW, job_timeout=60)
        assert job.id == 5  # ids go on after the copied ones
        assert await ledger.check() == []
    again = await _run_copy(source, postgres_url)
    assert again.returncode == 2
    assert "is not empty" in again.stderr


async def test_copy_refuses_a_missing_source_and_the_same_database(tmp_path):
    missing = await _run_copy(tmp_path / "nope.db", f"sqlite:///{tmp_path}/new.db")
    assert (missing.returncode, missing.stderr.strip()) == (2, f"no database at {tmp_path}/nope.db")
    async with await Ledger.open(tmp_path / "a.db"):
        pass
    same = await _run_copy(tmp_path / "a.db", str(tmp_path / "a.db"))
    assert same.returncode == 2
    assert "same database" in same.stderr
