"""/animate-admin: limits, budget, refunds, pause, channels, reports and settings."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import logging
import re
import zoneinfo
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import chart
from bot.errors import InvalidRequest
from bot.i18n import DEFAULT, Money, Number, Value, loads, money, msg, stored, t
from bot.ledger import Job
from bot.limits import UNLIMITED, GuildPolicy, periods
from bot.policy import describe_limit
from bot.pricing import MAX_USD, AmountTooLarge, parse_usd
from cogs.utils.delivery import for_member
from cogs.utils.embeds import channel_mentions, discord_time, options_text, safe_text
from cogs.utils.forget import ask_to_forget
from cogs.utils.i18n import CheckRefused, private, public, text

if TYPE_CHECKING:
    from bot.bot import AnimateBot

log = logging.getLogger(__name__)

Interaction = discord.Interaction["AnimateBot"]


def parse_limit(text: str) -> int | None:
    """``"2.50"`` -> mills; ``"unlimited"`` -> UNLIMITED; ``"default"`` -> None (clear)."""
    word = text.strip().lower()
    if word in ("default", "reset", "clear"):
        return None
    if word in ("unlimited", "none", "no limit", "off"):
        return UNLIMITED
    try:
        return parse_usd(word)
    except AmountTooLarge:
        raise InvalidRequest(
            "error.amount_too_large", text=text, most=Money(MAX_USD * 1000)
        ) from None
    except ValueError:
        raise InvalidRequest("error.not_an_amount", text=text) from None


def hours(value: float) -> Number:
    return Number(value, 0 if value == int(value) else 2)


def dollars(mills: int) -> str:
    sign = "-" if mills < 0 else ""
    return f"{sign}{abs(mills) // 1000}.{abs(mills) % 1000:03d}"


# A cell starting with one of these is read as a formula by spreadsheets (CSV injection).
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER: Final = re.compile(r"-?\d+(\.\d+)?")
NAME_LOOKUPS: Final = 8  # member look-ups in flight at once (discord.py waits out rate limits)


def spreadsheet_safe(cells: Iterable[object]) -> list[str]:
    """Every cell as text a spreadsheet shows as text: a leading formula character gets a
    ``'`` in front (plain numbers, negative ones too, stay numbers)."""
    safe = []
    for cell in cells:
        value = str(cell)
        if value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
            value = "'" + value
        safe.append(value)
    return safe


async def member_names(
    bot: AnimateBot, interaction: Interaction, user_ids: Iterable[int]
) -> dict[int, str]:
    """Each member's name as the server shows it (from the cache, else asked of Discord); for
    someone who left, their user name; the id when Discord knows neither."""
    guild = interaction.guild
    gate = asyncio.Semaphore(NAME_LOOKUPS)

    async def name(user_id: int) -> str:
        if user_id < 0:  # detached from a member who asked to be forgotten (/mydata forget)
            return t(DEFAULT, "privacy.forgotten_member")
        async with gate:
            member = guild.get_member(user_id) if guild is not None else None
            if member is None and guild is not None:
                with contextlib.suppress(discord.NotFound):
                    member = await guild.fetch_member(user_id)
            if member is not None:
                return member.display_name
            user = bot.get_user(user_id)
            if user is None:
                try:
                    user = await bot.fetch_user(user_id)
                except discord.NotFound:
                    return str(user_id)
            return user.display_name

    ids = list(dict.fromkeys(user_ids))
    return dict(zip(ids, await asyncio.gather(*(name(i) for i in ids)), strict=True))


# The recorded error shown to managers: the provider's words, escaped and bounded.
MAX_ERROR_SHOWN: Final = 1000


def job_embed(locale: str, job: Job) -> discord.Embed:
    """/animate-admin job: who, what, where it stands; why it failed, word for word."""
    quote = job.quote
    embed = discord.Embed(
        title=t(locale, "admin.job.title", job=job.id), colour=discord.Colour.blurple(),
        description=f">>> {safe_text(quote.prompt)}" if quote.prompt else None,
    )
    embed.add_field(name=t(locale, "approval.card.member"), value=f"<@{job.user_id}>")
    embed.add_field(name=t(locale, "admin.job.state"), value=t(locale, f"state.{job.state}"))
    embed.add_field(name=t(locale, "embed.price"), value=money(locale, job.price_mills))
    embed.add_field(name=t(locale, "embed.settings"), value=options_text(locale, quote.options),
                    inline=False)
    embed.add_field(name=t(locale, "admin.job.confirmed"), value=discord_time(job.created_at, "f"))
    if job.provider_job_id:
        embed.add_field(name=t(locale, "admin.job.provider_job"),
                        value=safe_text(job.provider_job_id, 100))
    if job.state in ("failed", "expired"):
        told = loads(job.outcome) if job.outcome else None
        if told is not None:
            embed.add_field(name=t(locale, "admin.job.told"),
                            value=safe_text(for_member(told).render(locale), 1000), inline=False)
        if job.error:
            embed.add_field(name=t(locale, "admin.job.error"),
                            value=safe_text(job.error, MAX_ERROR_SHOWN), inline=False)
    return embed


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Admin(
    commands.GroupCog,
    group_name="animate-admin",
    group_description=text("cmd.animate-admin.description"),
):
    def __init__(self, bot: AnimateBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        # Discord's default permission can be changed by a server; check on every use anyway.
        # (Only AppCommandErrors raised here reach the tree's error handler.)
        if interaction.guild_id is None:
            raise CheckRefused("error.command_server_only", command="/animate-admin")
        if not interaction.permissions.manage_guild:
            raise CheckRefused("error.manage_server_needed")
        return True

    async def _done(self, interaction: Interaction, key: str, /, **values: Value) -> None:
        """Answer the manager privately, in their language."""
        await interaction.response.send_message(
            t(private(interaction), key, **values), ephemeral=True
        )

    @app_commands.command(name="limit", description=text("cmd.animate-admin.limit.description"))
    @app_commands.describe(
        period=text("cmd.animate-admin.limit.period.description"),
        amount=text("cmd.animate-admin.limit.amount.description"),
        member=text("cmd.animate-admin.limit.member.description"),
        role=text("cmd.animate-admin.limit.role.description"),
    )
    async def limit(
        self,
        interaction: Interaction,
        period: Literal["daily", "monthly"],
        amount: str,
        member: discord.Member | None = None,
        role: discord.Role | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        detail = await self.bot.ledger.policies.set_limit(
            interaction.guild_id,
            interaction.user.id,
            self.bot.clock(),
            period=period,
            value=parse_limit(amount),
            member_id=member.id if member else None,
            role_id=role.id if role else None,
        )
        log.info("guild %s: %s set %s", interaction.guild_id, interaction.user.id, detail)
        await self._done(interaction, "admin.done", detail=detail)

    @app_commands.command(name="budget", description=text("cmd.animate-admin.budget.description"))
    @app_commands.describe(amount=text("cmd.animate-admin.budget.amount.description"))
    async def budget(self, interaction: Interaction, amount: str) -> None:
        assert interaction.guild_id is not None
        value = parse_limit(amount)
        detail = await self.bot.ledger.policies.set_budget(
            interaction.guild_id, interaction.user.id, self.bot.clock(), value
        )
        await self._done(interaction, "admin.done", detail=detail)
        self.bot.alerts.spent(interaction.guild_id)  # a lower budget may be crossed now

    @app_commands.command(
        name="approvals", description=text("cmd.animate-admin.approvals.description")
    )
    @app_commands.describe(
        above=text("cmd.animate-admin.approvals.above.description"),
        channel=text("cmd.animate-admin.approvals.channel.description"),
        role=text("cmd.animate-admin.approvals.role.description"),
    )
    async def approvals(
        self, interaction: Interaction, above: str, channel: discord.TextChannel | None = None,
        role: discord.Role | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        price = parse_limit(above)
        if price is None or price == UNLIMITED:
            raise InvalidRequest("error.not_an_amount", text=above)
        if price > 0 and channel is None:
            raise InvalidRequest("error.approvals_channel_needed")
        await self.bot.ledger.policies.set_approvals(
            interaction.guild_id, interaction.user.id, self.bot.clock(),
            above=price or None, channel_id=channel.id if channel else None,
            role_id=role.id if role else None,
        )
        if not price:
            waiting = await self.bot.ledger.awaiting_approval(interaction.guild_id)
            await self._done(interaction, "admin.approvals_off", count=len(waiting))
            return
        assert channel is not None
        who = (t(private(interaction), "admin.approvals_who_role", role=role.mention) if role
               else t(private(interaction), "admin.approvals_who"))
        await self._done(
            interaction, "admin.approvals_on", above=Money(price), channel=channel.mention,
            who=who, hours=hours(self.bot.settings.approval_ttl_hours),
        )

    @app_commands.command(name="alerts", description=text("cmd.animate-admin.alerts.description"))
    @app_commands.describe(channel=text("cmd.animate-admin.alerts.channel.description"))
    async def alerts(
        self, interaction: Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        assert interaction.guild_id is not None
        await self.bot.ledger.policies.set_alerts(
            interaction.guild_id, interaction.user.id, self.bot.clock(),
            channel.id if channel else None,
        )
        if channel is None:
            await self._done(interaction, "admin.alerts_off")
            return
        policy = await self.bot.ledger.policies.get(interaction.guild_id)
        budget = policy.budget_in_force(self.bot.ledger.defaults)
        if budget is None:
            await self._done(interaction, "admin.alerts_on_no_budget", channel=channel.mention)
        else:
            await self._done(
                interaction, "admin.alerts_on", channel=channel.mention, budget=Money(budget)
            )
        self.bot.alerts.spent(interaction.guild_id)

    @app_commands.command(name="refund", description=text("cmd.animate-admin.refund.description"))
    @app_commands.describe(
        job=text("cmd.animate-admin.refund.job.description"),
        reason=text("cmd.animate-admin.refund.reason.description"),
    )
    async def refund(
        self, interaction: Interaction, job: app_commands.Range[int, 1],
        reason: app_commands.Range[str, 1, 500],
    ) -> None:
        assert interaction.guild_id is not None
        refunded = await self.bot.ledger.admin_refund(
            job, interaction.guild_id, interaction.user.id, reason, self.bot.clock()
        )
        log.info("job %d refunded by %s", job, interaction.user.id)
        await self._done(
            interaction, "admin.refunded", price=Money(refunded.charged_mills), job=job,
            member=f"<@{refunded.user_id}>",
        )

    @app_commands.command(name="forget", description=text("cmd.animate-admin.forget.description"))
    @app_commands.describe(member=text("cmd.animate-admin.forget.member.description"))
    async def forget(self, interaction: Interaction, member: discord.User) -> None:
        """The member's own /mydata forget, for a request that reached the server another way:
        a private confirmation first."""
        await ask_to_forget(interaction, member.id)

    @app_commands.command(name="pause", description=text("cmd.animate-admin.pause.description"))
    async def pause(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        await self.bot.ledger.policies.set_paused(
            interaction.guild_id, interaction.user.id, self.bot.clock(), True
        )
        await self._done(interaction, "admin.paused")

    @app_commands.command(name="resume", description=text("cmd.animate-admin.resume.description"))
    async def resume(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        await self.bot.ledger.policies.set_paused(
            interaction.guild_id, interaction.user.id, self.bot.clock(), False
        )
        await self._done(interaction, "admin.resumed")

    @app_commands.command(
        name="channels", description=text("cmd.animate-admin.channels.description")
    )
    @app_commands.describe(
        action=text("cmd.animate-admin.channels.action.description"),
        channel=text("cmd.animate-admin.channels.channel.description"),
    )
    async def channels(
        self,
        interaction: Interaction,
        action: Literal["add", "remove", "clear"],
        channel: discord.TextChannel | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        if action != "clear" and channel is None:
            raise InvalidRequest(f"error.channel_needed.{action}")
        detail = await self.bot.ledger.policies.set_channel(
            interaction.guild_id,
            interaction.user.id,
            self.bot.clock(),
            None if action == "clear" else channel.id if channel else None,
            allowed=action != "remove",
        )
        policy = await self.bot.ledger.policies.get(interaction.guild_id)
        where = channel_mentions(policy.channels) or msg("admin.every_channel")
        await self._done(interaction, "admin.channels_done", detail=detail, channels=where)

    @app_commands.command(
        name="blocked-words", description=text("cmd.animate-admin.blocked-words.description")
    )
    @app_commands.describe(
        action=text("cmd.animate-admin.blocked-words.action.description"),
        words=text("cmd.animate-admin.blocked-words.words.description"),
    )
    async def blocked_words(
        self,
        interaction: Interaction,
        action: Literal["add", "remove", "list"],
        words: app_commands.Range[str, 1, 4000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        policies = self.bot.ledger.policies
        locale = private(interaction)
        head = ""
        if action != "list":
            if not words:
                raise InvalidRequest("error.blocked_words_needed")
            changed = await policies.set_blocked_words(
                interaction.guild_id, interaction.user.id, self.bot.clock(),
                words.replace("\n", ",").split(","), add=action == "add",
            )
            log.info("guild %s: %s changed blocked words (%s, %d)", interaction.guild_id,
                     interaction.user.id, action, len(changed))
            if changed:
                head = t(locale, f"admin.blocked_words.done.{action}", words=", ".join(changed))
            else:
                head = t(locale, f"admin.blocked_words.unchanged.{action}")
        current = await policies.blocked_words(interaction.guild_id)
        listed = ", ".join(current) or t(locale, "admin.blocked_words.none")
        if len(listed) > 1500:
            listed = listed[:1500] + "…"
        shown = t(locale, "admin.blocked_words.list", count=len(current), words=listed)
        await self._done(interaction, f"{head}\n{shown}" if head else shown)

    @app_commands.command(
        name="timezone", description=text("cmd.animate-admin.timezone.description")
    )
    @app_commands.describe(name=text("cmd.animate-admin.timezone.name.description"))
    async def timezone(self, interaction: Interaction, name: str) -> None:
        assert interaction.guild_id is not None
        detail = await self.bot.ledger.policies.set_timezone(
            interaction.guild_id, interaction.user.id, self.bot.clock(), name.strip()
        )
        await self._done(interaction, "admin.timezone_done", detail=detail)

    @timezone.autocomplete("name")
    async def timezone_names(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        needle = current.lower()
        names = sorted(n for n in zoneinfo.available_timezones() if needle in n.lower())
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]

    @app_commands.command(name="report", description=text("cmd.animate-admin.report.description"))
    @app_commands.describe(period=text("cmd.animate-admin.report.period.description"))
    async def report(
        self,
        interaction: Interaction,
        period: Literal["today", "this-month", "last-month", "all-time"] = "this-month",
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        policy = await self.bot.ledger.policies.get(interaction.guild_id)
        span = periods(self.bot.clock(), policy.timezone)
        since, until = {
            "today": (span.day_start, span.day_end),
            "this-month": (span.month_start, span.month_end),
            "last-month": (periods(span.month_start - 1, policy.timezone).month_start,
                           span.month_start),
            "all-time": (0.0, float("inf")),
        }[period]
        rows = await self.bot.ledger.report(interaction.guild_id, since, until)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([
            "member_id", "member", "jobs", "delivered", "failed_refunded",
            "admin_refunds_usd", "net_spend_usd", "operator_cost_usd", "dry_run_usd",
            "awaiting_approval",
        ])
        names = await member_names(self.bot, interaction, [row.user_id for row in rows])
        for row in rows:
            writer.writerow(spreadsheet_safe([
                row.user_id, names[row.user_id], row.jobs, row.delivered,
                row.refunded_failures, dollars(row.admin_refunds_mills), dollars(row.net_mills),
                dollars(row.operator_cost_mills), dollars(row.dry_run_mills),
                row.awaiting_approval,
            ]))
        total = sum(r.net_mills for r in rows)
        data = io.BytesIO(buffer.getvalue().encode())
        files = [discord.File(data, filename=f"animate-report-{period}.csv")]
        try:
            png = await self._chart(
                interaction, period, since, min(until, self.bot.clock()), policy,
                [(names[r.user_id], r.net_mills) for r in rows],
            )
        except Exception:
            log.exception("guild %s: could not draw the spending chart", interaction.guild_id)
        else:
            files.append(discord.File(
                io.BytesIO(png), filename=f"animate-report-{period}.png",
                description=t(public(interaction), "chart.alt", period=msg(f"choice.{period}")),
            ))
        summary = t(
            private(interaction), "admin.report", period=msg(f"choice.{period}"),
            timezone=policy.timezone, count=len(rows), total=Money(total),
        )
        awaiting = sum(r.awaiting_approval for r in rows)
        if awaiting:
            summary += "\n" + t(
                private(interaction), "admin.report_awaiting", count=awaiting,
                price=Money(sum(r.awaiting_mills for r in rows)),
            )
        await interaction.followup.send(
            summary,
            files=files,
            ephemeral=True,
        )

    async def _chart(
        self, interaction: Interaction, period: str, since: float, until: float,
        policy: GuildPolicy, top: list[tuple[str, int]],
    ) -> bytes:
        """The spending chart, in the server's language (a picture is easily shared)."""
        assert interaction.guild_id is not None
        locale = public(interaction)
        monthly = period == "all-time"
        spend = await self.bot.ledger.spend_by_job(interaction.guild_id, since, until)
        budget = policy.budget if policy.budget is not None else (
            self.bot.ledger.defaults.guild_budget
        )
        return await chart.draw(chart.ChartData(
            locale=locale,
            period=f"choice.{period}",
            timezone=policy.timezone,
            buckets=chart.buckets(spend, since, until, policy.timezone, monthly=monthly),
            monthly=monthly,
            budget_mills=None if budget is None or budget == UNLIMITED else budget,
            top=sorted(top, key=lambda item: -item[1]),
        ))

    @app_commands.command(name="job", description=text("cmd.animate-admin.job.description"))
    @app_commands.describe(job=text("cmd.animate-admin.job.job.description"))
    async def job(self, interaction: Interaction, job: app_commands.Range[int, 1]) -> None:
        """One job as the ledger has it, privately: for a failed one, the error as recorded
        with the provider's own words (members only ever read a translated category)."""
        assert interaction.guild_id is not None
        try:
            found = await self.bot.ledger.get_job(job)
        except KeyError:
            found = None
        if found is None or found.guild_id != interaction.guild_id:
            raise InvalidRequest("error.job_not_here")
        await interaction.response.send_message(
            embed=job_embed(private(interaction), found), ephemeral=True
        )

    @app_commands.command(
        name="settings", description=text("cmd.animate-admin.settings.description")
    )
    async def settings(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        bot = self.bot
        policies = bot.ledger.policies
        policy = await policies.get(interaction.guild_id)
        defaults = bot.ledger.defaults
        span = periods(bot.clock(), policy.timezone)
        report = await bot.ledger.report(interaction.guild_id, span.month_start, span.month_end)
        spent = sum(r.net_mills for r in report)
        locale = private(interaction)

        def say(key: str, /, **values: Value) -> str:
            return t(locale, key, **values)

        embed = discord.Embed(title=say("settings.title"), colour=discord.Colour.blurple())
        embed.add_field(
            name=say("settings.new_jobs"),
            value=say("settings.paused" if policy.paused else "settings.open"),
        )
        embed.add_field(name=say("settings.timezone"), value=policy.timezone)
        embed.add_field(
            name=say("settings.channels"),
            value=channel_mentions(policy.channels) or say("settings.every_channel"),
        )

        def shown(value: int | None, default: int | None) -> str:
            if value is None:
                return say(
                    "settings.default_value",
                    value=describe_limit(default if default is not None else UNLIMITED),
                )
            return say("settings.value", value=describe_limit(value))

        embed.add_field(name=say("settings.daily"), value=shown(policy.daily, defaults.daily))
        embed.add_field(
            name=say("settings.monthly"), value=shown(policy.monthly, defaults.monthly)
        )
        embed.add_field(
            name=say("settings.budget"),
            value=say(
                "settings.budget_value", budget=shown(policy.budget, defaults.guild_budget),
                spent=Money(spent, rounded=True),
            ),
        )
        if policy.approval_above is not None:
            approvals = say(
                "settings.approvals_value_role" if policy.approval_role
                else "settings.approvals_value",
                above=Money(policy.approval_above), channel=f"<#{policy.approval_channel}>",
                role=f"<@&{policy.approval_role}>",
            )
        else:
            approvals = say("settings.off")
        embed.add_field(name=say("settings.approvals"), value=approvals)
        embed.add_field(
            name=say("settings.alerts"),
            value=f"<#{policy.alerts_channel}>" if policy.alerts_channel else say("settings.off"),
        )
        overrides = await policies.overrides(interaction.guild_id)
        if overrides:
            lines = [
                say(
                    "settings.override",
                    target=f"{'<@' if o.scope == 'member' else '<@&'}{o.target_id}>",
                    period=msg(f"choice.{o.period}"), value=describe_limit(o.limit_mills),
                )
                for o in overrides
            ]
            embed.add_field(
                name=say("settings.overrides"), value="\n".join(lines)[:1024], inline=False
            )
        blocked = await policies.blocked_words(interaction.guild_id)
        embed.add_field(
            name=say("settings.blocked_words", count=len(blocked)),
            value=(", ".join(blocked) or say("admin.blocked_words.none"))[:1024],
            inline=False,
        )
        audit = await policies.audit_log(interaction.guild_id, 5)
        if audit:
            lines = [
                f"<t:{int(a.created_at)}:R> <@{a.actor_id}>: {stored(locale, a.detail)}"
                for a in audit
            ]
            embed.add_field(
                name=say("settings.recent"), value="\n".join(lines)[:1024], inline=False
            )
        embed.set_footer(
            text=say("settings.dry_run_on" if bot.settings.dry_run else "settings.dry_run_off")
        )
        embed.timestamp = dt.datetime.now(dt.UTC)
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: AnimateBot) -> None:
    await bot.add_cog(Admin(bot))
