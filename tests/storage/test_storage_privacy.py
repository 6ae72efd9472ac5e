"""Issue 21's storage on both engines: after a forget (and the sweep that finishes it) and after
prompt retention, no row of any table holds the member's id, prompt or picture link, except
ledger rows still inside their limit period; the ledger check passes at every step; limits
are not reset; the append-only tables allow only the designed detach."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from typing import Any

import pytest

from bot.ledger import Job, Ledger, PictureRef
from bot.ledger.privacy import FORGOTTEN
from bot.limits import periods
from bot.storage import as_dict
from bot.storage.base import RUNTIME_TABLES, TABLES
from tests.helpers import GUILD, NOW, make_quote
from tests.postgres import database_errors

DAY = 86400.0
MEMBER = 987_654_321_987_654_321
OTHER = 123_456_789_123_456_789
MANAGER = 555_555_555_555_555_555
PROMPT = "the member's own secret prompt"
PICTURE = "https://cdn.example/attachments/1/2/member-cat.png?ex=1"
MONTH_START = periods(NOW, "UTC").month_start


async def confirm(ledger: Ledger, user: int, at: float, message_id: int) -> Job:
    quote = replace(make_quote(user_id=user, now=at), prompt=PROMPT if user == MEMBER else
                    "someone else's prompt", image_url=PICTURE if user == MEMBER else
                    "https://cdn.example/other.png")
    await ledger.create_quote(quote)
    ref = PictureRef(3000, message_id, f"attachment:{message_id + 1}")
    await ledger.set_quote_message(quote.id, message_id, ref)
    return await ledger.confirm_quote(quote.id, user, at, job_timeout=1200)


async def deliver(ledger: Ledger, job: Job, at: float, result_message: int) -> Job:
    await ledger.mark_submitting(job.id, at)
    await ledger.mark_running(job.id, f"provider-{job.id}", job.price_mills, at)
    await ledger.mark_succeeded(job.id, f"https://video.example/{job.id}.mp4", at)
    await ledger.set_thread(job.id, result_message - 1)
    await ledger.settle(job.id, result_message, at)
    return await ledger.mark_told(job.id, at)


async def holders(ledger: Ledger) -> list[tuple[str, dict[str, Any]]]:
    """Every row of every table that holds the member's id, prompt or picture link."""
    found = []
    for table in (*TABLES, *RUNTIME_TABLES):
        for row in await ledger.db.fetchall(f"SELECT * FROM {table}"):
            values = as_dict(row)
            for value in values.values():
                if value == MEMBER or (isinstance(value, str) and (
                    str(MEMBER) in value or PROMPT in value or "member-cat" in value
                )):
                    found.append((table, values))
                    break
    return found


async def test_forget_erases_everything_but_ledger_rows_inside_their_period(ledger, database_url):
    # Last month: a delivered job. This month: a delivered job, one still running, an open
    # quote, the member's setting, a limit a manager set for them (audited, naming them),
    # and an admin refund the member made as a manager of another member's job.
    old = await deliver(ledger, await confirm(ledger, MEMBER, NOW - 40 * DAY, 9001), NOW - 40 * DAY,
                        9101)
    done = await deliver(ledger, await confirm(ledger, MEMBER, NOW - DAY, 9002), NOW - DAY, 9102)
    running = await confirm(ledger, MEMBER, NOW, 9003)
    await ledger.create_quote(replace(make_quote(user_id=MEMBER), prompt=PROMPT,
                                      image_url=PICTURE))
    await ledger.set_pictures_allowed(MEMBER, False)
    await ledger.policies.set_limit(GUILD, MANAGER, NOW, period="daily", value=3000,
                                    member_id=MEMBER)
    others = await deliver(ledger, await confirm(ledger, OTHER, NOW, 9004), NOW, 9104)
    await ledger.admin_refund(others.id, GUILD, MEMBER, "broken video", NOW)
    before = await ledger.usage(GUILD, MEMBER, NOW)
    assert before.today_mills == 170  # the running job's reserve (the other was yesterday)
    assert before.month_mills == 340

    async with ledger.db.transaction() as db:  # the job went through a moderators' card
        await db.execute("INSERT INTO guild_settings (guild_id, approval_channel_id) "
                         "VALUES (?, ?)", (GUILD, 7700))
        await db.execute("UPDATE jobs SET approval_message_id = 9900 WHERE id = ?", (done.id,))
    forgotten = await ledger.forget(MEMBER, NOW)
    assert (forgotten.erased_jobs, forgotten.pending_jobs, forgotten.deleted_quotes) == (2, 1, 1)
    assert await ledger.check() == []
    assert await ledger.pictures_allowed(MEMBER)  # settings erased: back to the default
    # Limits are not reset: this month's rows still count against the member.
    after = await ledger.usage(GUILD, MEMBER, NOW)
    assert (after.today_mills, after.month_mills) == (before.today_mills, before.month_mills)
    assert after.caps.daily == 3000

    allowed = {old.id: False, done.id: True, running.id: True}
    for table, row in await holders(ledger):
        if table == "ledger":
            assert allowed[row["job_id"]], row  # last month's rows are detached at once
            assert row["period_at"] >= MONTH_START
        elif table in ("quotes", "jobs"):
            assert row.get("job_id", row.get("id")) == running.id or row.get("id") == (
                running.quote.id), row  # the running job keeps what it needs until told
        else:
            assert (table, row["scope"]) == ("limit_overrides", "member"), (table, row)
    # The picture copies (the quote messages) are queued for deletion in Discord.
    queued = {message for _, _, _, message in await ledger.deletions()}
    assert {9001, 9002, 9900} <= queued
    assert 9003 not in queued
    threads = {channel for _, action, channel, _ in await ledger.deletions() if action == "thread"}
    assert threads == {9100, 9101}  # named after the prompt: renamed
    trail = await ledger.policies.audit_log(GUILD)
    assert any(FORGOTTEN in entry.detail for entry in trail)
    assert all(entry.actor_id != MEMBER for entry in trail)

    # The running job finishes and is told; the sweep erases it.
    await deliver(ledger, running, NOW + 60, 9103)
    assert await ledger.erase_finished_forgets(NOW + 60) == [running.id]
    assert 9003 in {message for _, _, _, message in await ledger.deletions()}
    assert await ledger.check() == []
    assert (await ledger.usage(GUILD, MEMBER, NOW + 60)).month_mills == 340
    left = await holders(ledger)
    assert {table for table, _ in left} == {"ledger", "limit_overrides"}

    # Next month, the rows are detached: nothing names the member but the manager's limit.
    next_month = NOW + 40 * DAY
    assert await ledger.detach_due(next_month) > 0
    assert await ledger.check() == []
    assert [(table, row["scope"]) for table, row in await holders(ledger)] == [
        ("limit_overrides", "member")]
    # The operator's command agrees (it is what an owner runs after any forget).
    option = "--database-url" if "://" in database_url else "--database"
    checked = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.ledger", "check", option, database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await checked.communicate()
    assert checked.returncode == 0, output.decode()
    # The server's totals are unchanged.
    report = await ledger.report(GUILD, 0, next_month)
    assert sum(r.net_mills for r in report) == 170 * 4 - 170  # four reserves, one admin refund


async def test_the_ledger_and_audit_allow_only_the_designed_detach(ledger, raw_sql):
    job = await deliver(ledger, await confirm(ledger, MEMBER, NOW, 9001), NOW, 9101)
    refused = database_errors()
    for statement, params in (
        ("UPDATE ledger SET amount_mills = 0 WHERE job_id = ?", (job.id,)),
        ("UPDATE ledger SET user_id = ? WHERE job_id = ?", (OTHER, job.id)),
        ("UPDATE ledger SET user_id = -1, amount_mills = 1 WHERE job_id = ?", (job.id,)),
        ("DELETE FROM ledger WHERE job_id = ?", (job.id,)),
        ("UPDATE audit SET detail = 'rewritten'", ()),
        ("DELETE FROM audit", ()),
    ):
        if "audit" in statement:
            await ledger.policies.set_paused(GUILD, MANAGER, NOW, True)
        with pytest.raises(refused):
            await raw_sql(statement, *params)
    await raw_sql("UPDATE ledger SET user_id = -7, actor_id = CASE WHEN actor_id IS NULL "
                  "THEN NULL ELSE -7 END WHERE job_id = ?", job.id)
    with pytest.raises(refused):  # a tombstone never becomes a member again
        await raw_sql("UPDATE ledger SET user_id = ? WHERE job_id = ?", MEMBER, job.id)


async def test_export_holds_everything_about_the_member_and_nothing_about_others(ledger):
    mine = await deliver(ledger, await confirm(ledger, MEMBER, NOW, 9001), NOW, 9101)
    others = await deliver(ledger, await confirm(ledger, OTHER, NOW, 9002), NOW, 9102)
    await ledger.admin_refund(mine.id, GUILD, MANAGER, "sorry", NOW)
    await ledger.set_pictures_allowed(MEMBER, False)
    data = await ledger.export(MEMBER, NOW)
    assert data["member_id"] == str(MEMBER)
    assert data["settings"] == {"pictures_allowed": False}
    [job] = data["jobs"]
    assert (job["job"], job["prompt"], job["picture_url"], job["state"]) == (
        mine.id, PROMPT, PICTURE, "delivered")
    assert job["options"]["resolution"] == "720p"
    assert [(r["kind"], r["amount_mills"]) for r in data["ledger"]] == [
        ("reserve", 170), ("settle", 0), ("adjust", -170)]
    text = repr(data)
    for foreign in (str(OTHER), str(MANAGER), "someone else's prompt", "other.png"):
        assert foreign not in text
    assert others.id not in {r["job_id"] for r in data["ledger"]}
    assert "callback_token" not in text
    assert "provider" not in text


async def test_retention_erases_old_prompts_and_picture_links_in_batches(ledger):
    old = [await deliver(ledger, await confirm(ledger, MEMBER, NOW - 100 * DAY, 9000 + i),
                         NOW - 100 * DAY, 9500 + i) for i in range(3)]
    recent = await deliver(ledger, await confirm(ledger, MEMBER, NOW - DAY, 9100), NOW - DAY,
                           9600)
    rows_before = await ledger.ledger_rows()
    before = NOW - 90 * DAY
    assert await ledger.erase_old(before, NOW, limit=2) == 2
    assert await ledger.erase_old(before, NOW, limit=2) == 1
    assert await ledger.erase_old(before, NOW, limit=2) == 0
    for job in old:
        erased = await ledger.get_job(job.id)
        assert (erased.quote.prompt, erased.quote.image_url, erased.quote.picture) == ("", "", None)
        assert erased.video_url is None
        assert erased.quote.erased_at == NOW
        assert erased.user_id == MEMBER  # retention keeps ids and money; forget removes them
    kept = await ledger.get_job(recent.id)
    assert (kept.quote.prompt, kept.quote.image_url) == (PROMPT, PICTURE)
    assert await ledger.ledger_rows() == rows_before
    assert await ledger.check() == []
    for table, row in await holders(ledger):
        if table == "quotes":
            assert row["id"] == recent.quote.id or row["user_id"] == MEMBER
            assert row["created_at"] >= before or (row["prompt"], row["image_url"]) == ("", "")


async def test_one_process_of_a_fleet_claims_each_sweep(ledger):
    assert await ledger.claim_sweep(NOW, 60)
    assert not await ledger.claim_sweep(NOW + 1, 60)
    assert not await ledger.claim_sweep(NOW + 59, 60)
    assert await ledger.claim_sweep(NOW + 60, 60)
    assert await ledger.claim_sweep(NOW - 3600, 60)  # the clock was set back an hour


async def test_of_several_processes_at_once_one_wins_each_sweep(database_url):
    """A fleet shares one database: each process claims the round; exactly one wins it."""
    ledgers = [await Ledger.open(database_url) for _ in range(3)]
    try:
        won = await asyncio.gather(*(ledger.claim_sweep(NOW, 60) for ledger in ledgers * 3))
        assert sum(won) == 1
        won = await asyncio.gather(*(ledger.claim_sweep(NOW + 60, 60) for ledger in ledgers))
        assert sum(won) == 1
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_a_managers_forget_covers_their_server_only(ledger):
    here = await deliver(ledger, await confirm(ledger, MEMBER, NOW, 9001), NOW, 9101)
    elsewhere_quote = replace(make_quote(user_id=MEMBER, guild_id=GUILD + 1), prompt=PROMPT)
    await ledger.create_quote(elsewhere_quote)
    elsewhere = await ledger.confirm_quote(elsewhere_quote.id, MEMBER, NOW, job_timeout=1200)
    await ledger.set_pictures_allowed(MEMBER, False)
    done = await ledger.forget(MEMBER, NOW, guild_id=GUILD, actor_id=MANAGER)
    assert (done.erased_jobs, done.pending_jobs) == (1, 0)
    assert (await ledger.get_job(here.id)).user_id < 0
    kept = await ledger.get_job(elsewhere.id)
    assert (kept.user_id, kept.quote.prompt) == (MEMBER, PROMPT)
    assert not await ledger.pictures_allowed(MEMBER)  # the member's own setting stays
    assert [e.action for e in await ledger.policies.audit_log(GUILD)] == ["forget"]
    assert await ledger.policies.audit_log(GUILD + 1) == []
    assert await ledger.check() == []
