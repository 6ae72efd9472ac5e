"""The picture a quote is for, and a URL of it that still works.

Discord's attachment URLs are signed and expire (about a day). So the bot posts a copy of the
picture with the quote message (its own message, which it can always read whole: other members'
messages come back empty without the privileged Message Content intent) and keeps where that
copy lives. Whenever a URL is needed later (a job's create after hours in line, Again, Edit) the
message is read again for a fresh one. A picture too large to copy keeps only its URL, whose
expiry is known: once it has passed the bot says so instead of handing out a dead link.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final
from urllib.parse import parse_qs, urlsplit

import discord

from bot.errors import PictureUnavailable
from bot.models import PictureRef, Quote

log = logging.getLogger(__name__)

# A URL this close to its expiry is treated as expired: a create or a download takes a while.
EXPIRY_MARGIN: Final = 300.0
IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff",
                         ".avif", ".heic")
COPY_NAMES: Final = {
    "image/png": "picture.png",
    "image/jpeg": "picture.jpg",
    "image/webp": "picture.webp",
    "image/gif": "picture.gif",
}
# ``attachment:<id>``, and since the copy is shown as the card's thumbnail ``/<filename>`` too.
_ATTACHMENT_KEY = re.compile(r"attachment:(\d+)(?:/([\w.-]{1,80}))?")


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture as the bot found it: a URL that works now, what Discord says about it, and
    where it lives when the bot can read that place again (None: not yet copied)."""

    url: str
    filename: str
    content_type: str | None
    size: int | None
    ref: PictureRef | None = None


def url_expiry(url: str) -> float | None:
    """When a signed Discord attachment URL stops working (its ``ex`` parameter), if it says."""
    values = parse_qs(urlsplit(url).query).get("ex")
    if not values:
        return None
    try:
        return float(int(values[0], 16))
    except ValueError:
        return None


def _is_image(attachment: discord.Attachment) -> bool:
    if attachment.content_type:
        return attachment.content_type.startswith("image/")
    return attachment.filename.lower().endswith(IMAGE_SUFFIXES)


def pictures_in(message: discord.Message) -> list[Picture]:
    """The message's pictures in the order a member sees them: image attachments, then the
    images of its embeds (read through Discord's media proxy, never from the embed's own
    link, which could point anywhere)."""
    found = [
        Picture(a.url, a.filename, a.content_type, a.size)
        for a in message.attachments
        if _is_image(a)
    ]
    for embed in message.embeds:
        media = embed.image if embed.image.proxy_url else embed.thumbnail
        if media.proxy_url:
            name = PurePosixPath(urlsplit(media.proxy_url).path).name or "image"
            found.append(Picture(media.proxy_url, name, None, None))
    return found


def find_in(message: discord.Message, key: str) -> str | None:
    """A fresh URL of the picture ``key`` names in ``message``, or None if it is not there."""
    match = _ATTACHMENT_KEY.fullmatch(key)
    if match is None:
        return None
    wanted = int(match[1])
    return next((a.url for a in message.attachments if a.id == wanted), None)


def copied_ref(message: discord.Message, filename: str) -> PictureRef | None:
    """Where the copy posted with the quote ``message`` lives."""
    attachment = next((a for a in message.attachments if a.filename == filename), None)
    if attachment is None:
        return None
    return PictureRef(message.channel.id, message.id, f"attachment:{attachment.id}/{filename}")


def thumbnail_url(quote: Quote) -> str | None:
    """What the quote card shows as its thumbnail: the copy posted with the card itself
    (``attachment://``, so Discord shows it small, in the embed, not as a full-size picture
    under it), else the picture's link."""
    ref = quote.picture
    if ref is not None and ref.message_id == quote.message_id:
        match = _ATTACHMENT_KEY.fullmatch(ref.key)
        if match is not None and match[2]:
            return f"attachment://{match[2]}"
    return quote.image_url or None


def _expired(url: str, now: float) -> bool:
    expiry = url_expiry(url)
    return expiry is not None and expiry - EXPIRY_MARGIN <= now


async def fresh_url(client: discord.Client, quote: Quote, now: float) -> str:
    """A URL of the quote's picture that works now. Raises PictureUnavailable (with words for
    the member) when the picture is gone or its only link has expired."""
    ref = quote.picture
    if ref is None:
        if not quote.image_url:  # erased: its member was forgotten
            raise PictureUnavailable("error.picture_deleted")
        if _expired(quote.image_url, now):
            raise PictureUnavailable("error.picture_expired")
        return quote.image_url
    try:
        channel = client.get_channel(ref.channel_id) or await client.fetch_channel(ref.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise PictureUnavailable("error.picture_unreadable")
        message = await channel.fetch_message(ref.message_id)
    except discord.NotFound:
        raise PictureUnavailable("error.picture_deleted") from None
    except discord.Forbidden:
        raise PictureUnavailable("error.picture_unreadable") from None
    except discord.HTTPException as exc:
        # Discord is having trouble: the link read earlier still serves until it expires.
        if _expired(quote.image_url, now):
            raise PictureUnavailable("error.picture_not_refreshed") from exc
        log.warning("quote %s: could not refresh the picture (%s); using its earlier link",
                    quote.id, exc)
        return quote.image_url
    url = find_in(message, ref.key)
    if url is None:
        raise PictureUnavailable("error.picture_deleted")
    return url
