"""What members and the provider can send the bot cannot make it mistake one message for another
(issue 18): the bot recognises its own posts by a mark no text can carry."""

import dataclasses

from cogs.utils.delivery import DiscordNotifier
from tests.e2e.world import MANAGER, MEMBER, video_by_dm
from tests.fakes.fake_shortapi import Plan


async def test_a_failure_echoing_another_jobs_marker_is_not_taken_for_that_jobs_post(world):
    """The provider's error text echoes the prompt, which names the next job's text marker: a
    restarted bot looking for the next job's video must not settle it on this failure."""
    forged = "· #2)"
    world.api.plan_next(Plan(statuses=[1, 3], error=f"prompt refused: a dragon {forged}"))
    quote = await world.quote(prompt=f"a dragon {forged}")
    # The reason goes by DM (as once the Confirm's token is gone), where history can be read.
    world.bot.side.notifier.remember_confirm = lambda *args: None  # type: ignore[method-assign]
    await world.click(quote, "Confirm")
    failure = await world.discord.wait_for_message(
        lambda m: "couldn't be made" in (m.content or "")
    )
    assert world.discord.channels[failure.channel_id]["type"] == 1  # a DM
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    first = await world.bot.ledger.get_job(1)
    # Job 2 of the same thread, interrupted while posting its video.
    second = dataclasses.replace(first, id=2, telling_at=None, posting_at=first.created_at)
    notifier = DiscordNotifier(world.bot, world.bot.ledger)
    assert await notifier.find_delivery(second) is None
    # The failure itself is still recognised as job 1's.
    assert await notifier.find_delivery(first) == failure.id


async def test_a_video_and_a_failure_sent_by_dm_are_recognised_as_the_jobs_own(world):
    quote = await world.quote()
    message = await video_by_dm(world, quote)
    assert world.discord.channels[message.channel_id]["type"] == 1  # a DM
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    job = await world.bot.ledger.get_job(1)
    notifier = DiscordNotifier(world.bot, world.bot.ledger)
    assert await notifier.find_delivery(dataclasses.replace(job, posting_at=job.created_at)) \
        == message.id
    assert job.user_id == MEMBER.id
    # Its button (Delete: no server to quote in from a DM) works there, for the member.
    click = await world.discord.click(message.id, f"animate:delete:{job.id}", user=MEMBER)
    assert "deleted" in (await world.private_reply(click)).lower()
    assert world.discord.messages[message.id].deleted


async def test_a_word_blocked_after_the_quote_is_refused_at_confirm(world):
    quote = await world.quote(prompt="a dragon over the sea")
    await world.bot.ledger.policies.set_blocked_words(
        world.discord.guild_id, MEMBER.id, world.bot.clock(), ["dragon"], add=True
    )
    click = await world.click(quote, "Confirm")
    assert "not allowed in this server" in await world.private_reply(click)
    assert world.api.creates == []
    assert await world.bot.ledger.ledger_rows() == []


async def test_a_channel_closed_to_animate_after_the_quote_is_refused_at_confirm(world):
    quote = await world.quote()
    other = world.discord.add_channel("art")
    await world.bot.ledger.policies.set_channel(
        world.discord.guild_id, MEMBER.id, world.bot.clock(), other, True
    )
    click = await world.click(quote, "Confirm")
    assert "can be used in" in await world.private_reply(click)
    assert world.api.creates == []
    assert await world.bot.ledger.ledger_rows() == []


async def test_the_nonce_of_a_post_reveals_nothing_of_the_jobs_callback_token(world):
    """Discord shows a message's nonce to the clients that receive it; the callback token is
    the secret that lets a callback in (issue 18: secrets never in messages)."""
    quote = await world.quote()
    await world.click(quote, "Confirm")
    message = await world.discord.wait_for_message(lambda m: m.videos)
    job = await world.bot.ledger.get_job(1)
    token = job.callback_token
    assert token
    assert message.nonce
    pieces = {token[i:i + 6] for i in range(len(token) - 5)}
    assert not any(piece in str(message.nonce) for piece in pieces), (message.nonce, token)


async def test_the_buttons_that_mark_a_failure_post_work(world):
    """The member's failure note carries Try again and Edit prompt (Again and Edit of the job,
    the bot's mark on it): Try again quotes anew."""
    world.api.plan_next(Plan(statuses=[3], error="render farm down"))
    quote = await world.quote(prompt="a cat on a boat")
    await world.click(quote, "Confirm")
    failure = await world.discord.wait_for_message(
        lambda m: "couldn't be made" in (m.content or "")
    )
    ids = [c.get("custom_id") for row in failure.components for c in row.get("components", [])]
    assert ids == ["animate:again:1", "animate:edit:1"]
    again = await world.discord.click(failure.id, "animate:again:1", user=MEMBER)
    fresh = await world.answer(again)
    assert "a cat on a boat" in world.embed_text(fresh.id)


async def test_the_reviews_bypasses_of_blocked_words_are_refused_through_animate(world):
    added = await world.discord.invoke(
        "animate-admin", {"action": "add", "words": "dragon, ドラゴン"}, user=MANAGER,
        subcommand="blocked-words",
    )
    assert "blocked words added" in await world.private_reply(added)
    for prompt in ("a dra\u034fgon", "a dragon\ufe0f", "a dra\ufe00gon", "a dra\u180bgon",
                   "a dra\u115fgon", "a dra\u3164gon", "a_dragon_flies", "赤いドラゴンが空を飛ぶ"):
        text = await world.private_reply(await world.animate(prompt=prompt))
        assert "not allowed in this server" in text, prompt
    assert world.api.creates == []
    allowed = await world.quote(prompt="トラコン")  # not ドラゴン: the voicing marks differ
    assert "トラコン" in world.embed_text(allowed.id)
