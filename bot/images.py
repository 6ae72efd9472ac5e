"""Checks on the reference image: declared type and size, and the bytes' own magic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import aiohttp

from bot.errors import InvalidRequest
from bot.i18n import Number

MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
ALLOWED_TYPES: Final = ("image/png", "image/jpeg", "image/webp", "image/gif")
SNIFF_BYTES: Final = 16


def sniff(head: bytes) -> str | None:
    """The image type the first bytes prove, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_declared(content_type: str | None, size: int) -> None:
    """Refuse what Discord already tells us is wrong, before downloading anything."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in ALLOWED_TYPES:
        if declared:
            raise InvalidRequest("error.image_type_named", declared=declared)
        raise InvalidRequest("error.image_type")
    if size > MAX_IMAGE_BYTES:
        raise InvalidRequest(
            "error.image_size",
            size=Number(size / 1024 / 1024),
            limit=MAX_IMAGE_BYTES // 1024 // 1024,
        )


def check_magic(head: bytes) -> str:
    """Refuse a file whose bytes are not an allowed image, whatever its name and type say."""
    kind = sniff(head)
    if kind is None:
        raise InvalidRequest("error.image_contents")
    return kind


@dataclass(frozen=True, slots=True)
class Fetched:
    head: bytes
    data: bytes | None  # the whole picture, when it is at most the size asked for
    size: int | None  # in bytes, when known


async def fetch_picture(session: aiohttp.ClientSession, url: str, *, keep_up_to: int) -> Fetched:
    """The picture at ``url``: its first bytes always, the whole of it when it is no larger
    than ``keep_up_to`` bytes (to post a copy of it), and its size when the server tells it.
    Refuses (InvalidRequest) a picture over ``MAX_IMAGE_BYTES`` or one Discord cannot serve."""
    timeout = aiohttp.ClientTimeout(total=60, sock_read=15)
    try:
        async with session.get(url, timeout=timeout) as response:
            if response.status >= 400:
                raise InvalidRequest("error.image_http", status=response.status)
            size = response.content_length
            if size is not None and size > MAX_IMAGE_BYTES:
                check_declared(ALLOWED_TYPES[0], size)
            wanted = keep_up_to if size is None or size <= keep_up_to else SNIFF_BYTES
            data = bytearray()
            eof = False
            while len(data) <= wanted:
                chunk = await response.content.read(min(256 * 1024, wanted + 1 - len(data)))
                if not chunk:
                    eof = True
                    break
                data += chunk
            complete = eof and len(data) <= keep_up_to
    except (aiohttp.ClientError, TimeoutError):
        raise InvalidRequest("error.image_unreadable") from None
    if complete:
        size = len(data)
    return Fetched(head=bytes(data[:SNIFF_BYTES]), data=bytes(data) if complete else None,
                   size=size)
