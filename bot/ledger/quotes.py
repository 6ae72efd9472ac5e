"""Quotes: written when /animate answers, used up by Confirm or Cancel."""

from __future__ import annotations

from bot.errors import NotQuoteOwner, QuoteUnavailable
from bot.models import PictureRef, Quote
from bot.storage import Connection, Database


async def usable_quote(db: Connection, quote_id: str, user_id: int, now: float) -> Quote:
    """The quote if ``user_id`` may still confirm or cancel it, inside the caller's transaction."""
    row = await db.fetchone("SELECT * FROM quotes WHERE id = ?", (quote_id,))
    if row is None:
        raise QuoteUnavailable("error.quote_gone")
    quote = Quote.from_row(row)
    if quote.user_id != user_id:
        raise NotQuoteOwner("error.not_quote_owner", owner=f"<@{quote.user_id}>")
    if quote.state == "confirmed":
        raise QuoteUnavailable("error.quote_confirmed")
    if quote.state == "cancelled":
        raise QuoteUnavailable("error.quote_cancelled")
    if now >= quote.expires_at:
        raise QuoteUnavailable("error.quote_expired")
    return quote


async def use_quote(db: Connection, quote: Quote, user_id: int, now: float, state: str) -> None:
    """Move an open quote to ``state``, unless another process used it first (then say why,
    as ``usable_quote`` tells it) or the expiry sweep took it (by its clock it had expired:
    either the sweep shrinks the card or the quote is used, never both)."""
    changed = await db.execute(
        "UPDATE quotes SET state = ? WHERE id = ? AND state = 'open' "
        "AND expiry_claimed_at IS NULL", (state, quote.id)
    )
    if changed != 1:
        await usable_quote(db, quote.id, user_id, now)
        row = await db.fetchone(
            "SELECT state, expiry_claimed_at FROM quotes WHERE id = ?", (quote.id,)
        )
        if row is not None and row["state"] == "open" and row["expiry_claimed_at"] is not None:
            raise QuoteUnavailable("error.quote_expired")
        raise QuoteUnavailable("error.quote_confirmed")


class Quotes:
    db: Database

    async def create_quote(self, quote: Quote) -> None:
        o = quote.options
        async with self.db.transaction() as db:
            await db.execute(
                "INSERT INTO quotes (id, guild_id, channel_id, user_id, message_id, in_thread, "
                "prompt, image_url, resolution, duration, aspect_ratio, audio, multi_shot, "
                "price_mills, upload_limit, state, created_at, expires_at, dry_run, "
                "picture_channel_id, picture_message_id, picture_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    quote.id, quote.guild_id, quote.channel_id, quote.user_id, quote.message_id,
                    int(quote.in_thread), quote.prompt, quote.image_url, o.resolution,
                    o.duration, o.aspect_ratio, int(o.audio), int(o.multi_shot),
                    quote.price_mills, quote.upload_limit, quote.state, quote.created_at,
                    quote.expires_at, int(quote.dry_run),
                    *((p.channel_id, p.message_id, p.key) if (p := quote.picture) else (None,) * 3),
                ),
            )

    async def set_quote_message(
        self, quote_id: str, message_id: int, picture: PictureRef | None = None
    ) -> None:
        """The quote's message (and, when the picture was posted with it, where it lives)."""
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE quotes SET message_id = ? WHERE id = ?", (message_id, quote_id)
            )
            if picture is not None:
                await db.execute(
                    "UPDATE quotes SET picture_channel_id = ?, picture_message_id = ?, "
                    "picture_key = ? WHERE id = ?",
                    (picture.channel_id, picture.message_id, picture.key, quote_id),
                )

    async def get_quote(self, quote_id: str) -> Quote | None:
        row = await self.db.fetchone("SELECT * FROM quotes WHERE id = ?", (quote_id,))
        return None if row is None else Quote.from_row(row)

    async def cancel_quote(self, quote_id: str, user_id: int, now: float) -> Quote:
        async with self.db.transaction() as db:
            quote = await usable_quote(db, quote_id, user_id, now)
            await use_quote(db, quote, user_id, now, "cancelled")
        return quote

    # -- expired quotes: shrunk by a sweep (``bot.expiry``) ---------------------------------

    async def expired_quotes(self, now: float, stale: float, limit: int = 100) -> list[Quote]:
        """Open quotes expired by ``now`` whose card still shows them in full (none taken by
        a sweep less than ``stale`` seconds ago), the oldest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM quotes WHERE state = 'open' AND expiry_shown_at IS NULL "
            "AND expires_at <= ? AND (expiry_claimed_at IS NULL OR expiry_claimed_at < ?) "
            "ORDER BY expires_at LIMIT ?",
            (now, now - stale, limit),
        )
        return [Quote.from_row(row) for row in rows]

    async def claim_expired_quote(self, quote_id: str, now: float, stale: float) -> bool:
        """Take the shrinking of an expired quote's card: one conditional write, so of several
        processes sweeping at once one has it (another may take it once ``stale`` seconds
        passed without it being shown: the taker died). A quote confirmed or cancelled
        meanwhile is not taken, and one taken is not confirmed (``use_quote``)."""
        async with self.db.transaction() as db:
            changed = await db.execute(
                "UPDATE quotes SET expiry_claimed_at = ? WHERE id = ? AND state = 'open' "
                "AND expiry_shown_at IS NULL AND expires_at <= ? "
                "AND (expiry_claimed_at IS NULL OR expiry_claimed_at < ?)",
                (now, quote_id, now, now - stale),
            )
        return changed == 1

    async def mark_expiry_shown(self, quote_id: str, now: float) -> None:
        """The card shows the quote expired (or never can: gone, out of the bot's reach)."""
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE quotes SET expiry_shown_at = ? WHERE id = ? AND expiry_shown_at IS NULL",
                (now, quote_id),
            )
