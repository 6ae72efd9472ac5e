"""A TCP proxy a test can cut and restore: a database server that goes away and comes back
(on the same port), without touching the real server other tests share.

For PostgreSQL it can also lose a COMMIT's answer: ``drop_commits`` forwards the client's
``COMMIT`` to the server, waits for the server's answer (so the transaction has committed)
and then drops the connection instead of passing the answer on: the client sees its
connection lost during COMMIT and cannot know that the write landed. With ``cut_for`` the
proxy also refuses every connection for that long afterwards (an outage that begins with a
lost COMMIT)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from dataclasses import dataclass, field

# The frontend's first message has no type byte; an SSLRequest is answered with one byte and
# followed by the real startup message (also untyped).
_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104


@dataclass
class CommitDrops:
    """How the proxy loses COMMIT answers: the next ``count`` COMMITs (``None``: every one)
    with ``probability`` each, then a cut of ``cut_for`` seconds. With ``when``, only the
    COMMITs of transactions one of whose statements contains that text (a test aims at one
    write: ``b"provider_job_id = "`` is the job runner's "running")."""

    count: int | None = 1
    probability: float = 1.0
    cut_for: float = 0.0
    when: bytes | None = None
    rng: random.Random = field(default_factory=random.Random)

    def take(self, statements: list[bytes]) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.when is not None and not any(self.when in sql for sql in statements):
            return False
        if self.rng.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True


class _Frontend:
    """Splits the client's byte stream into PostgreSQL messages to spot a simple-query
    ``COMMIT`` (asyncpg commits with ``COMMIT;`` in a Query message), and keeps the text of
    the statements run since the transaction began (asyncpg parses a statement once per
    connection and later only binds it by name)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._untyped = True  # the startup phase: messages without a type byte
        self._prepared: dict[bytes, bytes] = {}
        self.statements: list[bytes] = []  # of the transaction under way

    def feed(self, data: bytes) -> list[bytes] | None:
        """The statements of the transaction whose COMMIT ``data`` ends, else None."""
        self._buffer += data
        commit: list[bytes] | None = None
        while True:
            if self._untyped:
                if len(self._buffer) < 8:
                    return commit
                (length,) = struct.unpack("!i", self._buffer[:4])
                if len(self._buffer) < length:
                    return commit
                (code,) = struct.unpack("!i", self._buffer[4:8])
                self._buffer = self._buffer[length:]
                self._untyped = code in (_SSL_REQUEST, _GSS_REQUEST)
                continue
            if len(self._buffer) < 5:
                return commit
            kind = self._buffer[:1]
            (length,) = struct.unpack("!i", self._buffer[1:5])
            if len(self._buffer) < 1 + length:
                return commit
            body = self._buffer[5:1 + length]
            self._buffer = self._buffer[1 + length:]
            if kind == b"P":  # Parse: name, query
                name, _, rest = body.partition(b"\x00")
                sql = rest.partition(b"\x00")[0]
                self._prepared[name] = sql
            elif kind == b"B":  # Bind: portal, statement
                statement = body.split(b"\x00", 2)[1]
                self.statements.append(self._prepared.get(statement, b""))
            elif kind == b"Q":
                text = body.rstrip(b"\x00").strip().rstrip(b";").upper()
                if text.startswith((b"BEGIN", b"START TRANSACTION")):
                    self.statements = []
                elif text == b"COMMIT":
                    commit, self.statements = self.statements, []
                else:
                    self.statements.append(body)


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._drops: CommitDrops | None = None
        self._restoring: asyncio.Task[None] | None = None
        self._outages: set[asyncio.Task[None]] = set()
        self.commits_dropped = 0
        self.dropped = asyncio.Event()  # set at each lost COMMIT answer
        self.cuts = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        self.cuts += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            # Only now: from Python 3.12 wait_closed() also waits for open connections.
            await server.wait_closed()

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def cut_for(self, seconds: float) -> None:
        """An outage of ``seconds``: cut now, restore in the background afterwards."""
        await self.cut()
        self._restore_in(seconds)

    def drop_commits(self, drops: CommitDrops | None) -> None:
        """Lose COMMIT answers as ``drops`` says from now on (None: pass them all again)."""
        self._drops = drops

    async def close(self) -> None:
        await asyncio.gather(*self._outages, return_exceptions=True)
        if self._restoring is not None:
            self._restoring.cancel()
            await asyncio.gather(self._restoring, return_exceptions=True)
        await self.cut()

    def _restore_in(self, seconds: float) -> None:
        async def later() -> None:
            await asyncio.sleep(seconds)
            await self.restore()

        if self._restoring is not None:
            self._restoring.cancel()
        self._restoring = asyncio.get_running_loop().create_task(later())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        # Set while a COMMIT whose answer is to be lost is on its way to the server.
        losing = asyncio.Event()
        frontend = _Frontend()
        loop = asyncio.get_running_loop()
        for task in (
            loop.create_task(self._client_to_server(reader, up_writer, frontend, losing)),
            loop.create_task(self._server_to_client(up_reader, writer, up_writer, losing)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _client_to_server(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, frontend: _Frontend,
        losing: asyncio.Event,
    ) -> None:
        try:
            while data := await source.read(65536):
                committing = frontend.feed(data)
                if (committing is not None and self._drops is not None
                        and self._drops.take(committing)):
                    losing.set()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
            self._writers.discard(sink)

    async def _server_to_client(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter, losing: asyncio.Event,
    ) -> None:
        try:
            while data := await source.read(65536):
                if losing.is_set():
                    # The server answered the COMMIT: it is written. The client never hears.
                    await self._lose(sink, upstream)
                    return
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
            self._writers.discard(sink)

    async def _lose(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        drops = self._drops
        client.transport.abort()
        upstream.close()
        self._writers.discard(client)
        self._writers.discard(upstream)
        self.commits_dropped += 1
        self.dropped.set()
        if drops is not None and drops.cut_for > 0:
            # Not from this task: cut() cancels every pipe, this one included.
            outage = asyncio.get_running_loop().create_task(self.cut_for(drops.cut_for))
            self._outages.add(outage)
            outage.add_done_callback(self._outages.discard)
