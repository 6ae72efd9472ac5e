"""ShortAPI client: create and query PixVerse jobs, download results. Knows nothing of Discord."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp
import yarl

from bot.config import Secret
from bot.errors import AnimateError
from bot.pricing import MODEL, read_provider_amount
from bot.ratelimit import ROUTINE, START, URGENT, RateLimiter
from bot.safefetch import MAGIC_BYTES, AddressGuard, looks_like_video, video_content_type

log = logging.getLogger(__name__)

SUCCEEDED: Final = 2
FAILED: Final = 3
STATUS_NAMES: Final = {0: "queued", 1: "rendering", 2: "done", 3: "failed"}
NO_REASON: Final = "no reason given"
MAX_REDIRECTS: Final = 5
MAX_URL: Final = 1500  # a result link and the words around it fit in a 2,000-character message
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
UNSAFE_RESULT: Final = "provider.unsafe_result"  # catalogue keys (bot/locales)
NOT_A_VIDEO: Final = "provider.not_a_video"
T = TypeVar("T")


class ShortAPIError(AnimateError):
    """Any failure talking to ShortAPI; ``message`` is safe to show a user."""


class ProviderRejected(ShortAPIError):
    """The provider answered and said no (``code != 0`` or HTTP 4xx): retrying will not help."""


class ProviderUnavailable(ShortAPIError):
    """5xx, 429, timeouts, broken connections: retried, and this is raised once retries run out."""


class MalformedResponse(ShortAPIError):
    """The answer was not the JSON shape the API documents."""


class TooLarge(ShortAPIError):
    """The download is bigger than the caller can use (it stopped at the limit)."""


class UnsafeResult(ShortAPIError):
    """The result URL led somewhere the bot never downloads from (not http(s), not public)."""


class NotAVideo(ShortAPIError):
    """The result is not a video file (by its content type or its first bytes)."""


class OutcomeUnknown(ShortAPIError):
    """A create was sent but no definite answer came back: it must not be blindly resent."""


@dataclass(frozen=True, slots=True)
class CreatedJob:
    job_id: str
    amount_mills: int | None  # what the provider says it charged the operator, when readable
    amount_text: str | None = None  # exactly what it said (None: it said nothing)


@dataclass(frozen=True, slots=True)
class JobStatus:
    status: int
    video_url: str | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return STATUS_NAMES.get(self.status, "rendering")


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _message(body: Mapping[str, Any]) -> str:
    for key in ("msg", "message", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:300]
    return NO_REASON


def _clean_link(url: str) -> bool:
    """One http(s) URL with a host, nothing else: it may be posted as a link in a message, so
    no spaces, line breaks or markdown around it, and short enough for a Discord message."""
    if len(url) > MAX_URL or not url.startswith(("http://", "https://")):
        return False
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return False
    try:
        return bool(yarl.URL(url).host)
    except ValueError:
        return False


def _origin(url: yarl.URL) -> tuple[str, str | None, int | None]:
    """Scheme, host and port (the scheme's default when not written), as browsers compare."""
    return url.scheme, url.host, url.port


class ShortAPIClient:
    """Thin, typed access to the three things the bot does at ShortAPI."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: Secret,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        request_timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limiter: RateLimiter | None = None,
        observe: Callable[[str, float, str | None], None] | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._sleep = sleep
        self._limiter = limiter
        self._observe = observe

    @property
    def limiter(self) -> RateLimiter | None:
        """The pacing of every request (its rate is shared out when several processes run)."""
        return self._limiter

    def __repr__(self) -> str:
        return f"ShortAPIClient(base_url={self._base!r})"

    def _redact(self, text: str) -> str:
        return text.replace(self._key.get(), "********")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._backoff_max * 4)
        ceiling = min(self._backoff_max, self._backoff_base * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto

    async def _request(
        self,
        method: str,
        path: str,
        *,
        priority: int = ROUTINE,
        before_send: Callable[[], Awaitable[None]] | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One HTTP exchange, paced by the shared limiter and measured. ``before_send`` runs
        when the limiter has let the request go, just before it is sent; if it raises, nothing
        is sent. ``recheck`` runs in each new turn taken after one lapsed, just before the
        send (what before_send made sure of may have changed meanwhile); if it raises, nothing
        is sent."""
        if self._limiter is None:
            if before_send is not None:
                await before_send()
        else:
            # Nothing else goes until this request is on its way, and the next one is spaced
            # from then: neither the work in before_send nor a pause of the event loop (a GC
            # pass) between the turn and the send can bunch requests at the provider.
            step = before_send
            while True:
                turn = await self._limiter.acquire(priority, hold=True)
                try:
                    if step is not None:
                        await step()
                finally:
                    on_time = self._limiter.sent(turn)
                if on_time:
                    break
                # Its turn lapsed while the step waited (the database away): the line has let
                # others go meanwhile, and sending now could bunch with theirs; and our lease
                # may have run out meanwhile. Again in a new turn, with the recheck.
                step = recheck
        endpoint = path.rsplit("/", 1)[-1]
        started = time.monotonic()
        error: str | None = None
        try:
            return await self._exchange(method, path, **kwargs)
        except BaseException as exc:
            error = type(exc).__name__.lstrip("_")
            raise
        finally:
            if self._observe is not None:
                self._observe(endpoint, time.monotonic() - started, error)

    async def _exchange(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Raises ``_Retryable`` for transient failures."""
        url = f"{self._base}{path}"
        headers = {"Authorization": f"Bearer {self._key.get()}"}
        started = time.monotonic()
        async with self._session.request(
            method, url, headers=headers, timeout=self._timeout, **kwargs
        ) as response:
            text = await response.text(errors="replace")
            log.debug(
                "shortapi %s %s -> %d in %.0f ms",
                method, path.split("?")[0], response.status, (time.monotonic() - started) * 1000,
            )
            if response.status == 429:
                raise _Retryable("rate limited (HTTP 429)", _retry_after(response.headers))
            if response.status >= 500:
                raise _Retryable(f"provider error (HTTP {response.status})")
            try:
                body = json.loads(text)
            except ValueError:
                if response.status >= 400:
                    raise ProviderRejected(
                        "provider.refused_http", status=response.status
                    ) from None
                raise _Retryable("the answer was not JSON") from None
            if not isinstance(body, dict):
                raise MalformedResponse("provider.unreadable")
            if response.status >= 400 or body.get("code", 0) != 0:
                reason = self._redact(_message(body))
                raise ProviderRejected("provider.refused", reason=reason)
            return body

    async def _with_retries(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        resend_safe: Callable[[BaseException], bool] = lambda exc: True,
        gave_up: str = "provider.unavailable",
    ) -> T:
        """``call`` until it succeeds, backing off between transient failures; a failure that
        ``resend_safe`` refuses ends at once as ``OutcomeUnknown``."""
        last = "unknown error"
        for attempt in range(self._max_attempts):
            try:
                return await call()
            except _Retryable as exc:
                if not resend_safe(exc):
                    raise OutcomeUnknown("provider.unconfirmed", detail=exc.reason) from None
                last, retry_after = exc.reason, exc.retry_after
            except (aiohttp.ClientError, TimeoutError) as exc:
                if not resend_safe(exc):
                    raise OutcomeUnknown(
                        "provider.no_answer", detail=type(exc).__name__
                    ) from None
                last, retry_after = type(exc).__name__, None
            if attempt + 1 < self._max_attempts:
                delay = self._backoff(attempt, retry_after)
                log.info("shortapi %s: %s; retrying in %.1f s", what, last, delay)
                await self._sleep(delay)
        raise ProviderUnavailable(gave_up, detail=last)

    async def create(
        self,
        args: Mapping[str, object],
        *,
        callback_url: str | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        recheck: Callable[[], Awaitable[None]] | None = None,
    ) -> CreatedJob:
        """Start a job. Resent only when the first attempt provably never started a job.

        ``before_send`` runs once, when the rate limiter lets the first attempt go and just
        before it is sent (the caller records "submitting" there, not while the request waits
        its turn); if it raises, nothing is sent and the exception propagates. ``recheck``
        runs before the send when the turn lapsed while before_send waited (the caller makes
        sure the job is still its own); if it raises, the same."""
        payload: dict[str, object] = {"model": MODEL, "args": dict(args)}
        if callback_url:
            payload["callback_url"] = callback_url
        first = [before_send] if before_send is not None else []

        async def once() -> None:
            if first:
                await first.pop()()

        def resend_safe(exc: BaseException) -> bool:
            # 429: the provider refused the request. Connection not established: nothing sent.
            if isinstance(exc, _Retryable):
                return exc.reason.startswith("rate limited")
            return isinstance(exc, aiohttp.ClientConnectorError)

        body = await self._with_retries(
            "create",
            lambda: self._request(
                "POST", "/api/v1/job/create", json=payload, priority=START, before_send=once,
                recheck=recheck,
            ),
            resend_safe=resend_safe,
        )
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        job_id = data.get("job_id") or body.get("job_id")
        if not isinstance(job_id, str | int) or isinstance(job_id, bool) or not str(job_id):
            raise MalformedResponse("provider.no_job_id")
        # Whatever the amount says, the job exists at the provider now and must be followed:
        # reading it never raises, and the member pays the quote regardless.
        raw_amount = data.get("amount", body.get("amount"))
        return CreatedJob(
            job_id=str(job_id),
            amount_mills=read_provider_amount(raw_amount),
            amount_text=None if raw_amount is None else str(raw_amount)[:100],
        )

    async def query(self, job_id: str, *, urgent: bool = False, soon: bool = False) -> JobStatus:
        """The job's status; ``urgent`` queries (a callback said it changed) skip the line,
        ``soon`` ones (a job whose callback may have been lost) take turns with creates."""
        priority = URGENT if urgent else START if soon else ROUTINE
        body = await self._with_retries(
            "query",
            lambda: self._request(
                "GET", "/api/v1/job/query", params={"id": job_id}, priority=priority
            ),
        )
        data = body.get("data")
        if not isinstance(data, dict):
            raise MalformedResponse("provider.status_without_data")
        status = data.get("status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise MalformedResponse("provider.status_unknown")
        video_url: str | None = None
        result = data.get("result")
        if isinstance(result, dict):
            for key in ("images", "videos"):
                items = result.get(key)
                if isinstance(items, list) and items and isinstance(items[0], dict):
                    url = items[0].get("url")
                    if isinstance(url, str) and _clean_link(url):
                        video_url = url
                        break
        error = None
        if status == FAILED:
            reason = _message(data)
            error = self._redact(reason if reason != NO_REASON else _message(body))
        return JobStatus(status=status, video_url=video_url, error=error)

    async def download(self, url: str, dest: Path, *, max_bytes: int) -> int:
        """Stream ``url`` into ``dest`` (never whole in memory); return its size in bytes.

        Raises ``TooLarge`` as soon as the video is known to exceed ``max_bytes``;
        ``UnsafeResult`` when the URL or a redirect leads anywhere but a public http(s) host,
        checked on each address connected to (the one local place allowed is the exact origin,
        scheme, host and port, of the base URL the owner configured: a local provider or fake);
        ``NotAVideo`` unless the answer is typed as a video and its bytes are one.
        The result URL is on a storage host, not ShortAPI: no Authorization header goes there.
        """
        return await self._with_retries(
            "download",
            lambda: self._download_once(url, dest, max_bytes),
            gave_up="provider.download_failed",
        )

    async def _download_once(self, url: str, dest: Path, max_bytes: int) -> int:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
        first = yarl.URL(url)
        trusted = _origin(yarl.URL(self._base))
        guard = AddressGuard()
        # A session of its own: its connections are opened by the guard and never pooled with
        # (or reused by) the bot's other requests.
        connector = aiohttp.TCPConnector(socket_factory=guard, limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            current = first
            for _ in range(MAX_REDIRECTS + 1):
                if current.scheme not in ("http", "https") or not current.host:
                    raise UnsafeResult(UNSAFE_RESULT)
                # The provider names the result URL: its first host is no more trusted than
                # a redirect's. Only the configured base URL's own origin may be local.
                guard.anywhere = _origin(current) == trusted
                try:
                    async with session.get(
                        current, timeout=timeout, allow_redirects=False
                    ) as response:
                        location = response.headers.get("Location")
                        if response.status in REDIRECTS and location:
                            log.info("download redirected from %s to %s",
                                     current.host, yarl.URL(location).host or current.host)
                            current = current.join(yarl.URL(location))
                            continue
                        return await self._save(response, dest, max_bytes)
                except aiohttp.InvalidURL:
                    # Not a URL aiohttp can fetch (a host written as one number, say): asking
                    # again cannot help, and it is no place the bot downloads from.
                    log.warning("download refused: %s is not a valid URL", current.host)
                    raise UnsafeResult(UNSAFE_RESULT) from None
                except aiohttp.ClientConnectorError:
                    if guard.refused is not None:
                        log.warning("download refused: %s is not a public address (from %s)",
                                    guard.refused, current.host)
                        raise UnsafeResult(UNSAFE_RESULT) from None
                    raise
        log.warning("download refused: more than %d redirects from %s", MAX_REDIRECTS, first.host)
        raise UnsafeResult(UNSAFE_RESULT)

    @staticmethod
    async def _save(response: aiohttp.ClientResponse, dest: Path, max_bytes: int) -> int:
        if response.status == 429 or response.status >= 500:
            raise _Retryable(f"HTTP {response.status}", _retry_after(response.headers))
        if response.status >= 400:
            raise ProviderRejected("provider.video_gone", status=response.status)
        if not video_content_type(response.headers.get("Content-Type", "")):
            log.warning("download refused: content type %r",
                        response.headers.get("Content-Type"))
            raise NotAVideo(NOT_A_VIDEO)
        head = b""
        while len(head) < MAGIC_BYTES:
            chunk = await response.content.read(MAGIC_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        if not looks_like_video(head):
            log.warning("download refused: the file starts with %r, not a video", head[:12])
            raise NotAVideo(NOT_A_VIDEO)
        if response.content_length is not None and response.content_length > max_bytes:
            raise TooLarge(f"{response.content_length} bytes")
        size = len(head)
        with dest.open("wb") as file:
            file.write(head)
            async for chunk in response.content.iter_chunked(256 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"more than {max_bytes} bytes")
                file.write(chunk)
        if response.content_length is not None and size != response.content_length:
            raise _Retryable("download ended early")
        return size
