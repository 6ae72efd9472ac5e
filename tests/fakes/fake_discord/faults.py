"""Faults on demand: the next request failing with a status, a request held until released, a
gateway connection dropped.

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import asyncio
import re

from tests.fakes.fake_discord.model import (
    JSONDict,
    _Fault,
    _Reply,
    log,
)


class FaultsMixin:
    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        body: JSONDict | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching REST requests with this error instead.

        ``method`` is an HTTP method or ``"*"``; ``path_regex`` is searched (``re.search``) in the
        path below the API base, e.g. ``r"^/channels/\\d+/messages$"``.  A 429 gets ``Via`` and
        ``retry_after`` (default 0.01 s) so discord.py waits and retries.  A negative ``status``
        drops the connection without an answer.  Nothing is changed in the fake's state by a
        failed request.
        """
        self._faults.append(
            _Fault(method.upper(), re.compile(path_regex), status, body, dict(headers or {}), times)
        )

    def hold(self, method: str, path_regex: str, *, before: bool = False) -> asyncio.Event:
        """Stall the next matching REST request until the returned event is set.

        By default the request is carried out first and only its *answer* is held (the client
        cannot know it succeeded); with ``before=True`` nothing happens until release.
        ``held`` lists the (method, path) of requests currently stalled.
        """
        release = asyncio.Event()
        self._holds.append((method.upper(), re.compile(path_regex), before, release))
        return release

    def _take_hold(self, method: str, path: str, before: bool) -> asyncio.Event | None:
        for hold in self._holds:
            if hold[0] in ("*", method) and hold[2] == before and hold[1].search(path):
                self._holds.remove(hold)
                return hold[3]
        return None

    async def _stall(self, method: str, path: str, release: asyncio.Event) -> None:
        self.held.append((method, path))
        await self._notify()
        try:
            await release.wait()
        finally:
            self.held.remove((method, path))

    async def drop_connection(
        self, *, code: int = 4000, resumable: bool = True, shard_id: int | None = None
    ) -> None:
        """Close a gateway websocket (by default the one carrying the guild's events, else that
        of ``shard_id``); the client should reconnect and RESUME.

        With ``resumable=False`` the session is forgotten, so the RESUME gets op 9
        (invalid session) and the client must IDENTIFY again.
        """
        if shard_id is None:
            conns = self._conns_for(self.guild_id)
        else:
            conns = [
                c for c in self._live
                if not c.closed and c.session is not None and c.session.shard[0] == shard_id
            ]
        if not conns:
            raise RuntimeError("no live gateway connection to drop")
        conn = conns[-1]
        self._live.remove(conn)
        if conn.session is not None and not resumable:
            conn.session.resumable = False
        conn.closed = True
        await conn.ws.close(code=code, message=b"dropped by test")
        await self._notify()

    def _take_fault(self, method: str, path: str) -> _Reply | None:
        for fault in self._faults:
            if fault.method not in ("*", method) or not fault.pattern.search(path):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            body: JSONDict | None = dict(fault.body) if fault.body is not None else None
            headers = dict(fault.headers)
            if fault.status == 429:
                body = body or {"message": "You are being rate limited.", "global": False}
                body.setdefault("retry_after", 0.01)
                headers.setdefault("Via", "1.1 google")
                headers.setdefault("Retry-After", str(body["retry_after"]))
                headers.setdefault("X-RateLimit-Scope", "user")
            elif body is None and fault.status != 204:
                body = {"message": f"{fault.status}: injected failure", "code": 0}
            log.debug("fake discord: injecting %s for %s %s", fault.status, method, path)
            return _Reply(fault.status, body, headers)
        return None
