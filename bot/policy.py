"""What server managers set: limits, budget, pause, channels, time zone; each change audited."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot.errors import InvalidRequest
from bot.i18n import Money, Msg, Value, dumps, msg
from bot.limits import UNLIMITED, Caps, Defaults, GuildPolicy, resolve, zone
from bot.moderation import MAX_BLOCKED_WORD_LENGTH, MAX_BLOCKED_WORDS, BlockedWords, clean_entry
from bot.storage import Connection, Database

PERIODS: Final = ("daily", "monthly")
# Servers whose compiled blocked words a process keeps (the least recently quoted go first).
MATCHERS_KEPT: Final = 256
_GUILD_COLUMNS: Final = {
    "timezone": "timezone",
    "paused": "paused",
    "daily": "daily_limit_mills",
    "monthly": "monthly_limit_mills",
    "budget": "monthly_budget_mills",
    "alerts": "alerts_channel_id",
}


def describe_limit(value: int | None) -> Value:
    if value is None:
        return msg("setting.default")
    if value == UNLIMITED:
        return msg("setting.no_limit")
    return Money(value, rounded=True)


@dataclass(frozen=True, slots=True)
class Override:
    scope: str  # member | role
    target_id: int
    period: str
    limit_mills: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor_id: int
    action: str
    detail: str  # bot.i18n.stored() shows it in a language
    created_at: float


async def load_policy(db: Connection, guild_id: int) -> GuildPolicy:
    row = await db.fetchone("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
    channels = await db.fetchall(
        "SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,)
    )
    allowed = frozenset(int(r["channel_id"]) for r in channels)
    if row is None:
        return GuildPolicy(guild_id=guild_id, channels=allowed)
    return GuildPolicy(
        guild_id=guild_id,
        timezone=row["timezone"],
        paused=bool(row["paused"]),
        daily=row["daily_limit_mills"],
        monthly=row["monthly_limit_mills"],
        budget=row["monthly_budget_mills"],
        channels=allowed,
        alerts_channel=row["alerts_channel_id"],
        approval_above=row["approval_above_mills"],
        approval_channel=row["approval_channel_id"],
        approval_role=row["approval_role_id"],
    )


async def load_caps(
    db: Connection,
    policy: GuildPolicy,
    defaults: Defaults,
    user_id: int,
    role_ids: Sequence[int],
) -> Caps:
    rows = await db.fetchall(
        "SELECT scope, target_id, period, limit_mills FROM limit_overrides WHERE guild_id = ? "
        "AND (scope = 'role' OR target_id = ?)",
        (policy.guild_id, user_id),
    )
    mine = set(role_ids)
    member: dict[str, int | None] = {}
    roles: dict[str, list[int | None]] = {}
    for row in rows:
        if row["scope"] == "member":
            member[row["period"]] = row["limit_mills"]
        elif row["target_id"] in mine:
            roles.setdefault(row["period"], []).append(row["limit_mills"])
    return resolve(policy, defaults, member=member, roles=roles)


async def audit(
    db: Connection,
    guild_id: int,
    actor_id: int,
    action: str,
    detail: Msg | str,
    now: float,
) -> None:
    """Record who changed what, inside the caller's transaction. A ``Msg`` detail is kept as
    its key and values (``bot.i18n.dumps``), to be shown later in the reader's language."""
    await db.execute(
        "INSERT INTO audit (guild_id, actor_id, action, detail, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (guild_id, actor_id, action, dumps(detail) if isinstance(detail, Msg) else detail, now),
    )


class Policies:
    def __init__(self, db: Database) -> None:
        self._db = db
        # guild -> (its list's version, the list compiled): see ``blocked_matcher``.
        self._matchers: OrderedDict[int, tuple[int, BlockedWords]] = OrderedDict()

    async def get(self, guild_id: int) -> GuildPolicy:
        async with self._db.read() as db:
            return await load_policy(db, guild_id)

    async def caps(
        self, guild_id: int, user_id: int, role_ids: Sequence[int], defaults: Defaults
    ) -> Caps:
        async with self._db.read() as db:
            policy = await load_policy(db, guild_id)
            return await load_caps(db, policy, defaults, user_id, role_ids)

    async def overrides(self, guild_id: int) -> list[Override]:
        rows = await self._db.fetchall(
            "SELECT scope, target_id, period, limit_mills FROM limit_overrides "
            "WHERE guild_id = ? ORDER BY scope, target_id, period",
            (guild_id,),
        )
        return [Override(r["scope"], r["target_id"], r["period"], r["limit_mills"]) for r in rows]

    async def audit_log(self, guild_id: int, limit: int = 10) -> list[AuditEntry]:
        rows = await self._db.fetchall(
            "SELECT actor_id, action, detail, created_at FROM audit WHERE guild_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [AuditEntry(r["actor_id"], r["action"], r["detail"], r["created_at"])
                for r in rows]

    async def _set_guild(
        self, guild_id: int, actor_id: int, now: float, field: str, value: object, detail: Msg
    ) -> None:
        column = _GUILD_COLUMNS[field]
        async with self._db.transaction() as db:
            await db.execute(
                "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                (guild_id,),
            )
            await db.execute(
                f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?",  # noqa: S608
                (value, guild_id),
            )
            await audit(db, guild_id, actor_id, field, detail, now)

    async def set_limit(
        self,
        guild_id: int,
        actor_id: int,
        now: float,
        *,
        period: str,
        value: int | None,
        member_id: int | None = None,
        role_id: int | None = None,
    ) -> Msg:
        """Set (``value`` mills or ``UNLIMITED``) or clear (None) a cap; returns what changed."""
        if period not in PERIODS:
            raise InvalidRequest("error.period_invalid")
        if member_id is not None and role_id is not None:
            raise InvalidRequest("error.member_or_role")
        if member_id is None and role_id is None:
            detail = msg(f"audit.limit.server.{period}", value=describe_limit(value))
            await self._set_guild(guild_id, actor_id, now, period, value, detail)
            return detail
        scope, target = ("member", member_id) if member_id is not None else ("role", role_id)
        mention = f"<@{target}>" if scope == "member" else f"<@&{target}>"
        detail = msg(f"audit.limit.{scope}.{period}", target=mention, value=describe_limit(value))
        async with self._db.transaction() as db:
            if value is None:
                await db.execute(
                    "DELETE FROM limit_overrides WHERE guild_id = ? AND scope = ? "
                    "AND target_id = ? AND period = ?",
                    (guild_id, scope, target, period),
                )
            else:
                await db.execute(
                    "INSERT INTO limit_overrides (guild_id, scope, target_id, period, "
                    "limit_mills) VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, scope, "
                    "target_id, period) DO UPDATE SET limit_mills = excluded.limit_mills",
                    (guild_id, scope, target, period, value),
                )
            await audit(db, guild_id, actor_id, "limit", detail, now)
        return detail

    async def set_budget(self, guild_id: int, actor_id: int, now: float, value: int | None) -> Msg:
        detail = msg("audit.budget", value=describe_limit(value))
        await self._set_guild(guild_id, actor_id, now, "budget", value, detail)
        return detail

    async def set_alerts(
        self, guild_id: int, actor_id: int, now: float, channel_id: int | None
    ) -> Msg:
        """Budget alerts to ``channel_id``, or none (None)."""
        detail = (
            msg("audit.alerts.off") if channel_id is None
            else msg("audit.alerts.on", channel=f"<#{channel_id}>")
        )
        await self._set_guild(guild_id, actor_id, now, "alerts", channel_id, detail)
        return detail

    async def set_approvals(
        self, guild_id: int, actor_id: int, now: float, *, above: int | None,
        channel_id: int | None, role_id: int | None,
    ) -> Msg:
        """Jobs at or above ``above`` mills wait for approval in ``channel_id`` (by members
        with Manage Server or ``role_id``); ``above=None`` turns approvals off."""
        if above is None:
            detail = msg("audit.approvals.off")
            channel_id = role_id = None
        else:
            detail = msg("audit.approvals.on", above=Money(above), channel=f"<#{channel_id}>")
        async with self._db.transaction() as db:
            await db.execute(
                "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                (guild_id,),
            )
            await db.execute(
                "UPDATE guild_settings SET approval_above_mills = ?, approval_channel_id = ?, "
                "approval_role_id = ? WHERE guild_id = ?",
                (above, channel_id, role_id, guild_id),
            )
            await audit(db, guild_id, actor_id, "approvals", detail, now)
        return detail

    async def set_paused(self, guild_id: int, actor_id: int, now: float, paused: bool) -> Msg:
        detail = msg("audit.paused" if paused else "audit.resumed")
        await self._set_guild(guild_id, actor_id, now, "paused", int(paused), detail)
        return detail

    async def set_timezone(self, guild_id: int, actor_id: int, now: float, name: str) -> Msg:
        zone(name)  # refuses names zoneinfo does not know
        detail = msg("audit.timezone", name=name)
        await self._set_guild(guild_id, actor_id, now, "timezone", name, detail)
        return detail

    async def set_channel(
        self, guild_id: int, actor_id: int, now: float, channel_id: int | None, allowed: bool
    ) -> Msg:
        """Allow or disallow one channel; ``channel_id=None`` with ``allowed=True`` allows all."""
        async with self._db.transaction() as db:
            if channel_id is None:
                await db.execute("DELETE FROM allowed_channels WHERE guild_id = ?", (guild_id,))
                detail = msg("audit.channels.all")
            elif allowed:
                await db.execute(
                    "INSERT INTO allowed_channels (guild_id, channel_id) VALUES (?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (guild_id, channel_id),
                )
                detail = msg("audit.channels.add", channel=f"<#{channel_id}>")
            else:
                await db.execute(
                    "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
                    (guild_id, channel_id),
                )
                detail = msg("audit.channels.remove", channel=f"<#{channel_id}>")
            await audit(db, guild_id, actor_id, "channels", detail, now)
        return detail

    async def blocked_words(self, guild_id: int) -> list[str]:
        """The server's blocked words and phrases (normalised), in alphabetical order."""
        rows = await self._db.fetchall(
            "SELECT word FROM blocked_words WHERE guild_id = ? ORDER BY word", (guild_id,)
        )
        return [str(r["word"]) for r in rows]

    async def blocked_matcher(self, guild_id: int) -> BlockedWords:
        """The server's blocked words compiled, as each quote checks them. Compiled again only
        when the list changed, in this process or any other: its version (bumped with every
        change) is read each time, one row by key."""
        async with self._db.read() as db:
            row = await db.fetchone(
                "SELECT blocked_words_version FROM guild_settings WHERE guild_id = ?",
                (guild_id,),
            )
            version = int(row["blocked_words_version"]) if row is not None else 0
            kept = self._matchers.get(guild_id)
            if kept is not None and kept[0] == version:
                self._matchers.move_to_end(guild_id)
                return kept[1]
            rows = await db.fetchall(
                "SELECT word FROM blocked_words WHERE guild_id = ?", (guild_id,)
            )
        # Compiling a full list takes tens of milliseconds: not on the event loop.
        matcher = await asyncio.to_thread(BlockedWords, [str(r["word"]) for r in rows])
        self._matchers[guild_id] = (version, matcher)
        self._matchers.move_to_end(guild_id)
        while len(self._matchers) > MATCHERS_KEPT:
            self._matchers.popitem(last=False)
        return matcher

    async def set_blocked_words(
        self, guild_id: int, actor_id: int, now: float, entries: Sequence[str], *, add: bool
    ) -> list[str]:
        """Add or remove words or phrases; returns the ones that changed (audited)."""
        cleaned = list(dict.fromkeys(w for w in (clean_entry(e) for e in entries) if w))
        if not cleaned:
            raise InvalidRequest("error.blocked_words_needed")
        too_long = [w for w in cleaned if len(w) > MAX_BLOCKED_WORD_LENGTH]
        if too_long:
            raise InvalidRequest("error.blocked_word_too_long", limit=MAX_BLOCKED_WORD_LENGTH)
        async with self._db.transaction() as db:
            # Counted and changed under the server's lock: two changes at once (two processes)
            # cannot both count the list before the other's inserts and pass the cap together.
            await db.lock_guild(guild_id)
            rows = await db.fetchall(
                "SELECT word FROM blocked_words WHERE guild_id = ?", (guild_id,)
            )
            current = {str(r["word"]) for r in rows}
            if add:
                changed = [w for w in cleaned if w not in current]
                if len(current) + len(changed) > MAX_BLOCKED_WORDS:
                    raise InvalidRequest("error.blocked_words_too_many", limit=MAX_BLOCKED_WORDS)
                for word in changed:
                    await db.execute(
                        "INSERT INTO blocked_words (guild_id, word) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING",
                        (guild_id, word),
                    )
            else:
                changed = [w for w in cleaned if w in current]
                for word in changed:
                    await db.execute(
                        "DELETE FROM blocked_words WHERE guild_id = ? AND word = ?",
                        (guild_id, word),
                    )
            if changed:
                await db.execute(
                    "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                    (guild_id,),
                )
                await db.execute(
                    "UPDATE guild_settings SET blocked_words_version = blocked_words_version + 1 "
                    "WHERE guild_id = ?",
                    (guild_id,),
                )
                detail = msg(f"audit.blocked_words.{'add' if add else 'remove'}",
                             words=", ".join(changed))
                await audit(db, guild_id, actor_id, "blocked-words", detail, now)
        return changed
