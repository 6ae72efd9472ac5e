"""Members own their data (issue 21): what is kept about a member, an export of it, forgetting
them, and the sweep that finishes forgets and applies PROMPT_RETENTION_DAYS.

What holds a member's data: ``quotes`` (user_id, prompt, image_url, the quote's message and the
message holding the bot's copy of the picture), ``jobs`` (user_id, video_url, thread and result
message, the provider's error wording; ``decided_by``, a moderator who approved another
member's job), ``ledger`` (user_id; actor_id, the member on a reserve
or a manager on an admin refund), ``audit`` (a manager as actor_id; a member named ``<@id>`` in
a detail), ``member_settings``, and ``limit_overrides`` (a limit a manager set for the member).

Forgetting, in one transaction, in every server (a manager's forget: in their server only):
quotes never confirmed are deleted; jobs
that are final and told are erased (``erase_job``: prompt, picture link and message references
emptied, the member's id replaced by the forget's tombstone ``-forgets.id``); jobs still in
progress go to ``forget_pending`` and are erased by the sweep once they have been delivered and
told; the messages holding the member's picture copies are queued in ``discord_deletions``;
threads named after their prompts are queued to be renamed; the member's settings are
deleted; the audit names a tombstone instead.

The ledger rows keep the member's id until the month they count in has ended in the server's
time zone (the longest limit period): until then they still count against the member's daily
and monthly limits, so forgetting never resets a limit. ``detach`` then gives them the job's
tombstone, the one UPDATE the ledger's trigger allows. ``bot.ledger.check`` accepts a row
naming a member only while its job carries a tombstone. Limits a manager set for the member
stay: they are the server's decision, and dropping them would let a forget lift a cap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from bot.i18n import Msg, dumps, loads, msg
from bot.limits import periods
from bot.models import FINAL_STATES
from bot.policy import audit, load_policy
from bot.storage import Connection, Database, as_dict

log = logging.getLogger(__name__)

BATCH: Final = 500
# The catalogue key a rewritten audit detail names instead of a forgotten member (the audit's
# trigger lets a detail change only to one that carries it).
FORGOTTEN: Final = "privacy.forgotten_member"
SWEEP_KEY: Final = "privacy.sweep_at"
EXPORT_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class MemberData:
    """What ``/mydata show`` tells a member, over every server."""

    jobs: int
    servers: int
    first_at: float | None
    last_at: float | None
    prompts: int  # prompts still kept (not erased)
    pictures: int  # picture links still kept
    open_quotes: int
    ledger_rows: int
    pending_forget: int  # jobs to be erased once finished (an earlier forget)
    limits: int  # limits a server manager set for the member
    pictures_allowed: bool


@dataclass(frozen=True, slots=True)
class Forgotten:
    tombstone: int
    erased_jobs: int
    pending_jobs: int
    deleted_quotes: int


def _forget_text(detail: str, mention: str) -> str:
    """An audit detail with ``mention`` (``<@id>``) replaced by a forgotten member."""
    stored = loads(detail)
    if stored is None:
        return detail.replace(mention, f"({FORGOTTEN})")

    def swap(value: Any) -> Any:
        if isinstance(value, Msg):
            return Msg(value.key, {k: swap(v) for k, v in value.values.items()})
        if isinstance(value, str) and mention in value:
            return msg(FORGOTTEN) if value == mention else value.replace(mention, f"({FORGOTTEN})")
        return value

    return dumps(swap(stored))


async def erase_job(db: Connection, job_id: int, tombstone: int, now: float) -> int | None:
    """Erase a final, told job of a forgotten member: its quote's prompt, picture link and
    message references, the job's video link, thread and result message, and the member's id
    (the tombstone instead). Money columns stay; the ledger rows follow in ``detach``. The quote
    message (which holds the bot's copy of the picture) is queued for deletion in Discord, and
    so is the video's post in the channel (it shows the prompt); the quote message's id is
    returned, for ``forget_pictures``."""
    row = await db.fetchone(
        "SELECT q.id, q.channel_id, q.message_id, j.thread_id, j.result_message_id, "
        "j.approval_message_id, g.approval_channel_id FROM jobs j "
        "JOIN quotes q ON q.id = j.quote_id "
        "LEFT JOIN guild_settings g ON g.guild_id = j.guild_id WHERE j.id = ?",
        (job_id,),
    )
    if row is None:
        return None
    if row["approval_message_id"] and row["approval_channel_id"] is not None:
        # The moderators' card shows the picture and the prompt too.
        await _queue_deletion(db, row["approval_channel_id"], row["approval_message_id"], now)
    if row["message_id"] is not None:
        await _queue_deletion(db, row["channel_id"], row["message_id"], now)
    if row["thread_id"] is not None:  # named after the prompt (videos of older versions)
        await _queue_deletion(db, row["thread_id"], 0, now, action="thread")
    elif row["result_message_id"] is not None:  # a reply to the quote: the prompt in bold
        await _queue_deletion(db, row["channel_id"], row["result_message_id"], now)
    await db.execute(
        "UPDATE quotes SET user_id = ?, prompt = '', image_url = '', message_id = NULL, "
        "picture_channel_id = NULL, picture_message_id = NULL, picture_key = NULL, "
        "erased_at = COALESCE(erased_at, ?) WHERE id = ?",
        (tombstone, now, row["id"]),
    )
    await db.execute(
        "UPDATE jobs SET user_id = ?, video_url = NULL, thread_id = NULL, "
        "result_message_id = NULL, approval_message_id = NULL, error = NULL, outcome = NULL "
        "WHERE id = ?",
        (tombstone, job_id),
    )
    return None if row["message_id"] is None else int(row["message_id"])


async def _queue_deletion(
    db: Connection, channel_id: int, message_id: int, now: float, *, action: str = "message"
) -> None:
    await db.execute(
        "INSERT INTO discord_deletions (action, channel_id, message_id, created_at) "
        "VALUES (?, ?, ?, ?)",
        (action, channel_id, message_id, now),
    )


async def forget_pictures(db: Connection, message_ids: list[int]) -> None:
    """Other members' quotes made with Again or Edit from these pictures point at messages that
    are being deleted: their link to the picture goes too (a job of theirs still waiting will
    find the picture gone, and is refunded with that reason). Called once the forgotten
    member's own quotes no longer point there; one statement per ``BATCH`` messages."""
    for start in range(0, len(message_ids), BATCH):
        chunk = message_ids[start:start + BATCH]
        await db.execute(
            "UPDATE quotes SET image_url = '', picture_channel_id = NULL, "  # noqa: S608 - marks
            "picture_message_id = NULL, picture_key = NULL "
            f"WHERE picture_message_id IN ({','.join('?' * len(chunk))}) AND NOT EXISTS ("
            "SELECT 1 FROM jobs j WHERE j.quote_id = quotes.id "
            "AND j.state NOT IN ('delivered', 'failed', 'expired'))",
            tuple(chunk),
        )


async def detach(db: Connection, guild_id: int, before: float, limit: int = BATCH) -> int:
    """Give the tombstone of their job to ledger rows that still name a forgotten member and
    count in a period that ended before ``before`` (the start of the server's current month);
    at most ``limit`` rows. Returns how many."""
    return await db.execute(
        "UPDATE ledger SET "
        "user_id = (SELECT j.user_id FROM jobs j WHERE j.id = ledger.job_id), "
        "actor_id = CASE WHEN actor_id = user_id "
        "THEN (SELECT j.user_id FROM jobs j WHERE j.id = ledger.job_id) ELSE actor_id END "
        "WHERE id IN (SELECT l.id FROM ledger l JOIN jobs j ON j.id = l.job_id "
        "WHERE j.user_id < 0 AND l.user_id >= 0 AND l.guild_id = ? AND l.period_at < ? "
        "ORDER BY l.id LIMIT ?)",
        (guild_id, before, limit),
    )


class Privacy:
    db: Database

    async def pictures_allowed(self, user_id: int) -> bool:
        row = await self.db.fetchone(
            "SELECT pictures_allowed FROM member_settings WHERE user_id = ?", (user_id,)
        )
        return row is None or bool(row["pictures_allowed"])

    async def set_pictures_allowed(self, user_id: int, allowed: bool) -> None:
        async with self.db.transaction() as db:
            await db.execute(
                "INSERT INTO member_settings (user_id, pictures_allowed) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET pictures_allowed = excluded.pictures_allowed",
                (user_id, int(allowed)),
            )

    async def member_data(self, user_id: int) -> MemberData:
        async with self.db.read() as db:
            jobs = await db.fetchone(
                "SELECT COUNT(*) AS n, COUNT(DISTINCT guild_id) AS g, MIN(created_at) AS first, "
                "MAX(created_at) AS last FROM jobs WHERE user_id = ?",
                (user_id,),
            )
            quotes = await db.fetchone(
                "SELECT COUNT(CASE WHEN prompt != '' THEN 1 END) AS prompts, "
                "COUNT(CASE WHEN image_url != '' OR picture_key IS NOT NULL THEN 1 END) AS pics, "
                "COUNT(CASE WHEN state = 'open' THEN 1 END) AS open "
                "FROM quotes WHERE user_id = ?",
                (user_id,),
            )
            ledger = await db.fetchone(
                "SELECT COUNT(*) AS n FROM ledger WHERE user_id = ?", (user_id,)
            )
            pending = await db.fetchone(
                "SELECT COUNT(*) AS n FROM forget_pending p JOIN jobs j ON j.id = p.job_id "
                "WHERE j.user_id = ?",
                (user_id,),
            )
            limits = await db.fetchone(
                "SELECT COUNT(*) AS n FROM limit_overrides WHERE scope = 'member' "
                "AND target_id = ?",
                (user_id,),
            )
            setting = await db.fetchone(
                "SELECT pictures_allowed FROM member_settings WHERE user_id = ?", (user_id,)
            )
        assert jobs is not None
        assert quotes is not None
        assert ledger is not None
        assert pending is not None
        assert limits is not None
        return MemberData(
            jobs=int(jobs["n"]), servers=int(jobs["g"]), first_at=jobs["first"],
            last_at=jobs["last"], prompts=int(quotes["prompts"]), pictures=int(quotes["pics"]),
            open_quotes=int(quotes["open"]), ledger_rows=int(ledger["n"]),
            pending_forget=int(pending["n"]), limits=int(limits["n"]),
            pictures_allowed=setting is None or bool(setting["pictures_allowed"]),
        )

    async def export(self, user_id: int, now: float) -> dict[str, Any]:
        """Everything kept about the member, in every server, and nothing about anyone else:
        the fields are documented in docs (Privacy). Manager ids, operator costs, callback
        tokens and the provider's job ids are left out."""
        async with self.db.read() as db:
            quotes = await db.fetchall(
                "SELECT q.*, j.id AS job_id, j.state AS job_state, j.price_mills AS job_price, "
                "j.video_url, j.thread_id, j.result_message_id, j.created_at AS confirmed_at, "
                "j.finished_at, j.error "
                "FROM quotes q LEFT JOIN jobs j ON j.quote_id = q.id WHERE q.user_id = ? "
                "ORDER BY q.created_at",
                (user_id,),
            )
            ledger = await db.fetchall(
                "SELECT id, guild_id, job_id, kind, amount_mills, period_at, created_at, "
                "reason, dry_run FROM ledger WHERE user_id = ? ORDER BY id",
                (user_id,),
            )
            limits = await db.fetchall(
                "SELECT guild_id, period, limit_mills FROM limit_overrides "
                "WHERE scope = 'member' AND target_id = ? ORDER BY guild_id, period",
                (user_id,),
            )
            setting = await db.fetchone(
                "SELECT pictures_allowed FROM member_settings WHERE user_id = ?", (user_id,)
            )
        jobs: list[dict[str, Any]] = []
        unconfirmed: list[dict[str, Any]] = []
        for row in quotes:
            entry: dict[str, Any] = {
                "server_id": str(row["guild_id"]),
                "channel_id": str(row["channel_id"]),
                "quote_message_id": _id(row["message_id"]),
                "prompt": row["prompt"] or None,
                "picture_url": row["image_url"] or None,
                "options": {
                    "resolution": row["resolution"], "duration": row["duration"],
                    "aspect_ratio": row["aspect_ratio"], "audio": bool(row["audio"]),
                    "multi_shot": bool(row["multi_shot"]),
                },
                "price_mills": row["price_mills"],
                "dry_run": bool(row["dry_run"]),
                "quoted_at": row["created_at"],
                "erased_at": row["erased_at"],
            }
            if row["job_id"] is None:
                unconfirmed.append({**entry, "quote_state": row["state"]})
                continue
            jobs.append({
                "job": row["job_id"], **entry, "state": row["job_state"],
                "confirmed_at": row["confirmed_at"], "finished_at": row["finished_at"],
                "video_url": row["video_url"], "thread_id": _id(row["thread_id"]),
                "video_message_id": _id(row["result_message_id"]), "error": row["error"],
            })
        return {
            "format": EXPORT_FORMAT,
            "exported_at": now,
            "member_id": str(user_id),
            "amounts": "mills (1/1000 USD); times in seconds since 1970-01-01 UTC",
            "settings": {
                "pictures_allowed": setting is None or bool(setting["pictures_allowed"]),
            },
            "jobs": jobs,
            "unconfirmed_quotes": unconfirmed,
            "ledger": [
                {**{k: v for k, v in as_dict(r).items() if k != "guild_id"},
                 "server_id": str(r["guild_id"]), "dry_run": bool(r["dry_run"])}
                for r in ledger
            ],
            "limits_set_for_you": [
                {"server_id": str(r["guild_id"]), "period": r["period"],
                 "limit_mills": None if r["limit_mills"] < 0 else r["limit_mills"]}
                for r in limits
            ],
        }

    async def forget(
        self, user_id: int, now: float, *, guild_id: int | None = None,
        actor_id: int | None = None,
    ) -> Forgotten:
        """Forget ``user_id`` (see the module's docstring): in every server when the member
        asks; in ``guild_id`` only when a manager of that server asks (``actor_id``,
        ``/animate-admin forget``: a server's managers speak for their server, not for others),
        and then the audit records that a forget happened there, not whom."""
        scope, where = ("", ()) if guild_id is None else (" AND guild_id = ?", (guild_id,))
        async with self.db.transaction() as db:
            forget_id = await db.insert("INSERT INTO forgets (created_at) VALUES (?)", (now,))
            tombstone = -forget_id
            unconfirmed = await db.fetchall(
                "SELECT q.id, q.channel_id, q.message_id FROM quotes q WHERE q.user_id = ? "  # noqa: S608 - scope: ours
                f"AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.quote_id = q.id){scope}",
                (user_id, *where),
            )
            pictures: list[int] = []
            for row in unconfirmed:
                await db.execute("DELETE FROM quotes WHERE id = ?", (row["id"],))
                if row["message_id"] is not None:
                    await _queue_deletion(db, row["channel_id"], row["message_id"], now)
                    pictures.append(int(row["message_id"]))
            jobs = await db.fetchall(
                f"SELECT id, state, told_at FROM jobs WHERE user_id = ?{scope} ORDER BY id",  # noqa: S608 - scope: ours
                (user_id, *where),
            )
            erased = pending = 0
            for job in jobs:
                if job["state"] in FINAL_STATES and job["told_at"] is not None:
                    message_id = await erase_job(db, job["id"], tombstone, now)
                    pictures += [] if message_id is None else [message_id]
                    erased += 1
                else:
                    pending += await db.execute(
                        "INSERT INTO forget_pending (job_id, tombstone) VALUES (?, ?) "
                        "ON CONFLICT (job_id) DO NOTHING",
                        (job["id"], tombstone),
                    )
            await forget_pictures(db, pictures)
            if guild_id is None:  # the member's own settings hold for every server
                await db.execute("DELETE FROM member_settings WHERE user_id = ?", (user_id,))
            # Where the member acted as a server manager or moderator: other members' rows
            # name them.
            await db.execute(
                f"UPDATE jobs SET decided_by = ? WHERE decided_by = ?{scope}",  # noqa: S608 - scope: ours
                (tombstone, user_id, *where),
            )
            await db.execute(
                f"UPDATE ledger SET actor_id = ? WHERE actor_id = ? AND user_id != ?{scope}",  # noqa: S608 - scope: ours
                (tombstone, user_id, user_id, *where),
            )
            await self._forget_in_audit(db, user_id, tombstone, scope, where)
            if guild_id is not None and actor_id is not None:
                await audit(db, guild_id, actor_id, "forget", msg("audit.forget"), now)
        log.info("forget %d: %d jobs erased, %d to erase once finished, %d quotes deleted",
                 forget_id, erased, pending, len(unconfirmed))
        await self.detach_due(now)
        return Forgotten(tombstone, erased, pending, len(unconfirmed))

    @staticmethod
    async def _forget_in_audit(
        db: Connection, user_id: int, tombstone: int, scope: str, where: tuple[int, ...]
    ) -> None:
        await db.execute(
            f"UPDATE audit SET actor_id = ? WHERE actor_id = ?{scope}",  # noqa: S608 - scope: ours
            (tombstone, user_id, *where),
        )
        mention = f"<@{user_id}>"
        rows = await db.fetchall(
            f"SELECT id, detail FROM audit WHERE detail LIKE ?{scope}", (f"%{mention}%", *where)  # noqa: S608 - scope: ours
        )
        for row in rows:
            await db.execute(
                "UPDATE audit SET detail = ? WHERE id = ?",
                (_forget_text(row["detail"], mention), row["id"]),
            )

    async def erase_finished_forgets(self, now: float, limit: int = BATCH) -> list[int]:
        """Jobs of forgotten members that have now been delivered (or refunded) and told:
        erase them. Returns their ids."""
        async with self.db.transaction() as db:
            rows = await db.fetchall(
                "SELECT p.job_id, p.tombstone FROM forget_pending p JOIN jobs j ON j.id = p.job_id "
                "WHERE j.state IN ('delivered', 'failed', 'expired') AND j.told_at IS NOT NULL "
                "ORDER BY p.job_id LIMIT ?",
                (limit,),
            )
            pictures: list[int] = []
            for row in rows:
                message_id = await erase_job(db, row["job_id"], row["tombstone"], now)
                pictures += [] if message_id is None else [message_id]
                await db.execute("DELETE FROM forget_pending WHERE job_id = ?", (row["job_id"],))
            await forget_pictures(db, pictures)
        return [int(row["job_id"]) for row in rows]

    async def detach_due(self, now: float) -> int:
        """Detach every ledger row of a forgotten member whose month has ended in its server's
        time zone (batched: one transaction per batch)."""
        guilds = await self.db.fetchall(
            "SELECT DISTINCT l.guild_id FROM jobs j JOIN ledger l ON l.job_id = j.id "
            "WHERE j.user_id < 0 AND l.user_id >= 0"
        )
        total = 0
        for row in guilds:
            while True:
                async with self.db.transaction() as db:
                    policy = await load_policy(db, row["guild_id"])
                    month_start = periods(now, policy.timezone).month_start
                    done = await detach(db, row["guild_id"], month_start)
                total += done
                if done < BATCH:
                    break
        return total

    async def erase_old(self, before: float, now: float, limit: int = BATCH) -> int:
        """PROMPT_RETENTION_DAYS: erase the prompt and picture link of quotes made before
        ``before`` whose job (if any) is finished and told; at most ``limit``. Money and
        message references stay."""
        async with self.db.transaction() as db:
            rows = await db.fetchall(
                "SELECT q.id FROM quotes q LEFT JOIN jobs j ON j.quote_id = q.id "
                "WHERE q.erased_at IS NULL AND q.created_at < ? AND (j.id IS NULL OR ("
                "j.state IN ('delivered', 'failed', 'expired') AND j.told_at IS NOT NULL)) "
                "ORDER BY q.created_at LIMIT ?",
                (before, limit),
            )
            ids = [row["id"] for row in rows]
            if ids:
                marks = ",".join("?" * len(ids))
                await db.execute(
                    "UPDATE quotes SET prompt = '', image_url = '', picture_channel_id = NULL, "  # noqa: S608 - placeholders only
                    "picture_message_id = NULL, picture_key = NULL, erased_at = ? "
                    f"WHERE id IN ({marks})",
                    (now, *ids),
                )
                await db.execute(
                    f"UPDATE jobs SET video_url = NULL WHERE quote_id IN ({marks})",  # noqa: S608
                    tuple(ids),
                )
        return len(ids)

    async def claim_sweep(self, now: float, every: float) -> bool:
        """True for one process of a fleet per ``every`` seconds: that one sweeps."""
        async with self.db.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, '0') ON CONFLICT (key) DO NOTHING",
                (SWEEP_KEY,),
            )
            # A round claimed in the future means a clock was set back: claim it again.
            return await db.execute(
                "UPDATE meta SET value = ? WHERE key = ? AND (CAST(value AS DOUBLE PRECISION) "
                "<= ? OR CAST(value AS DOUBLE PRECISION) > ?)",
                (repr(now), SWEEP_KEY, now - every, now + every),
            ) == 1

    async def deletions(self, limit: int = BATCH) -> list[tuple[int, str, int, int]]:
        """What to do in Discord for forgotten members: (row id, action, channel id, message
        id); action ``message`` deletes the message, ``thread`` renames the thread."""
        rows = await self.db.fetchall(
            "SELECT id, action, channel_id, message_id FROM discord_deletions ORDER BY id "
            "LIMIT ?",
            (limit,),
        )
        return [(int(r["id"]), str(r["action"]), int(r["channel_id"]), int(r["message_id"]))
                for r in rows]

    async def deletion_done(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        async with self.db.transaction() as db:
            await db.execute(
                f"DELETE FROM discord_deletions WHERE id IN ({','.join('?' * len(ids))})",  # noqa: S608
                tuple(ids),
            )


def _id(value: int | None) -> str | None:
    """Discord ids as strings in the export, as Discord writes them (JSON numbers lose digits
    in JavaScript)."""
    return None if value is None else str(value)
