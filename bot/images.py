"""Checks on the reference image: declared type and size, and the bytes' own magic."""

from __future__ import annotations

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


async def fetch_head(session: aiohttp.ClientSession, url: str) -> bytes:
    """The first bytes of ``url``, asking for only those (a server may send more; we stop)."""
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with session.get(
            url, headers={"Range": f"bytes=0-{SNIFF_BYTES - 1}"}, timeout=timeout
        ) as response:
            if response.status >= 400:
                raise InvalidRequest("error.image_http", status=response.status)
            head = b""
            while len(head) < SNIFF_BYTES:
                chunk = await response.content.read(SNIFF_BYTES - len(head))
                if not chunk:
                    break
                head += chunk
            return head
    except (aiohttp.ClientError, TimeoutError):
        raise InvalidRequest("error.image_unreadable") from None
