"""End-to-end harness: the real bot (discord.py, SQLite) against the fake Discord and ShortAPI,
and what a member does there in more than one file (the Animate menu and its modal, a finished
video, a video delivered by DM, /animate-admin, /usage)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import yarl

from bot.__main__ import open_bot
from bot.bot import AnimateBot
from bot.config import Settings, load_settings
from tests.fakes.fake_discord import FakeDiscord, FakeFile, FakeInteraction, FakeMessage, FakeUser
from tests.fakes.fake_shortapi import FakeShortAPI

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)
DISCORD_TOKEN = "fake-discord-token-AAAA.BBBB.CCCC"

MEMBER = FakeUser(id=4242, name="alice")
STRANGER = FakeUser(id=5353, name="mallory")
MANAGER = FakeUser(id=6464, name="maria", permissions=1 << 5)  # Manage Server


@dataclass
class World:
    discord: FakeDiscord
    api: FakeShortAPI
    bot: AnimateBot
    settings: Settings

    async def animate(
        self,
        *,
        image: bytes = PNG,
        filename: str = "cat.png",
        content_type: str | None = "image/png",
        prompt: str = "the cat starts surfing",
        user: FakeUser = MEMBER,
        channel_id: int | None = None,
        **options: Any,
    ) -> FakeInteraction:
        attachment = self.discord.add_attachment(image, filename, content_type)
        return await self.discord.invoke(
            "animate",
            {"image": attachment, "prompt": prompt, **options},
            user=user,
            channel_id=channel_id,
        )

    async def answer(self, interaction: FakeInteraction) -> FakeMessage:
        """The message the bot finally answered ``interaction`` with (after any "thinking…"):
        the public one when it also added a private note (a quote and the member's balance)."""

        def find() -> FakeMessage | None:
            found = [
                message for message_id in [interaction.response_message_id,
                                           *interaction.followup_message_ids][::-1]
                if message_id is not None
                and (message := self.discord.messages.get(message_id)) is not None
                and not message.deleted and not message.loading
            ]
            public = [message for message in found if not message.ephemeral]
            return (public or found or [None])[0]

        return await self.discord.wait_for(find)

    async def menu_quote(self, submitted: FakeInteraction) -> FakeMessage:
        """The quote an Animate menu's modal made: a reply to the picture's message, posted
        after ``submitted`` (the member is answered privately)."""
        return await self.discord.wait_for_message(
            lambda m: m.id > submitted.id and bool(m.embeds) and m.message_reference is not None
            and not m.ephemeral
        )

    async def quote(self, **kwargs: Any) -> FakeMessage:
        """Run /animate and return the quote message (with its buttons)."""
        message = await self.answer(await self.animate(**kwargs))
        assert message.components, f"expected a quote with buttons, got {message.content!r}"
        return message

    async def one_rendering_one_waiting(self) -> tuple[FakeMessage, FakeMessage]:
        """With MAX_ACTIVE_JOBS_PER_USER=1: the member's first job renders (queries held until
        ``api.hold_queries`` is set) and their second waits in line for a free slot."""
        self.api.hold_queries = asyncio.Event()
        first = await self.quote()
        await self.click(first, "Confirm")
        await self.api.wait_for(lambda: self.api.queries)
        second = await self.quote()
        await self.click(second, "Confirm")
        await self.discord.wait_for(
            lambda: "Waiting in line" in self.embed_text(second.id)
        )
        return first, second

    async def click(self, message: FakeMessage, label: str, user: FakeUser = MEMBER
                    ) -> FakeInteraction:
        quote_id = self.quote_id(message)
        return await self.discord.click(
            message.id, f"animate:{label.lower()}:{quote_id}", user=user
        )

    @staticmethod
    def quote_id(message: FakeMessage) -> str:
        for row in message.components:
            for component in row.get("components", []):
                custom_id = str(component.get("custom_id", ""))
                if custom_id.startswith("animate:confirm:"):
                    return custom_id.rsplit(":", 1)[1]
        raise AssertionError("no Confirm button on the message")

    def embed(self, message_id: int) -> dict[str, Any]:
        embeds = self.discord.messages[message_id].embeds
        assert embeds, "expected an embed"
        return embeds[0]

    def embed_text(self, message_id: int) -> str:
        embed = self.embed(message_id)
        author = embed.get("author", {}).get("name")
        parts = [author] if author else []
        parts += [embed.get("title", ""), embed.get("description", "")]
        for field in embed.get("fields", []):
            parts += [field["name"], field["value"]]
        parts.append(embed.get("footer", {}).get("text", ""))
        return "\n".join(parts)

    async def private_reply(self, interaction: FakeInteraction) -> str:
        """Text of the ephemeral message the bot answered with."""

        def find() -> FakeMessage | None:
            for message_id in [interaction.response_message_id,
                               *interaction.followup_message_ids]:
                message = self.discord.messages.get(message_id) if message_id else None
                if message and message.ephemeral and not message.deleted and not message.loading:
                    return message
            return None

        message = await self.discord.wait_for(find)
        return message.content or ""


@contextlib.asynccontextmanager
async def running_world(
    tmp_path: Path, *, fakes: tuple[FakeDiscord, FakeShortAPI] | None = None, **env: str
) -> AsyncIterator[World]:
    """The bot on ``tmp_path``'s database. With ``fakes`` (already started, and left running
    after) a bot can be restarted against the same Discord and ShortAPI."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    if fakes is None:
        fake_discord = FakeDiscord(owner=FakeUser(id=1, name="owner"))
        fake_api = FakeShortAPI()
        await fake_discord.start()
        await fake_api.start()
    else:
        fake_discord, fake_api = fakes
    ready_before = fake_discord.identify_count
    settings = load_settings({
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "SHORTAPI_KEY": fake_api.key,
        "DATABASE_PATH": str(tmp_path / "animate.db"),
        "SHORTAPI_BASE_URL": fake_api.base_url,
        "DISCORD_API_BASE_URL": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "POLL_INTERVAL_SECONDS": "0.05",
        "HTTP_PORT": "0",
        **env,
    })
    try:
        async with open_bot(settings) as bot:
            task = asyncio.create_task(bot.start(DISCORD_TOKEN))
            try:
                await asyncio.wait_for(fake_discord.ready.wait(), 10)
                await fake_discord.wait_for(lambda: fake_discord.identify_count > ready_before)
                # setup_hook (extensions, resume, command sync) runs before the gateway connects.
                await fake_discord.wait_for(lambda: bot.get_channel(fake_discord.channel_id))
                yield World(fake_discord, fake_api, bot, settings)
            finally:
                await bot.close()
                await asyncio.wait_for(task, 10)
                # Every scenario must leave money that adds up.
                assert await bot.ledger.check() == []
    finally:
        if fakes is None:
            await fake_api.close()
            await fake_discord.close()
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
        assert isinstance(old_gateway, yarl.URL)


async def admin(world, sub, user=MANAGER, **options):
    """/animate-admin <sub> with ``options``, by the manager unless ``user`` says otherwise; its
    answer."""
    interaction = await world.discord.invoke("animate-admin", options, user=user, subcommand=sub)
    return await world.answer(interaction)


async def usage_fields(world, user=MEMBER, **options):
    """/usage's embed fields, name -> value."""
    message = await world.answer(await world.discord.invoke("usage", options, user=user))
    return {f["name"]: f["value"] for f in message.embeds[0]["fields"]}


def button(message: FakeMessage, action: str) -> str:
    """The custom_id of the message's ``animate:<action>:<job>`` button."""
    for row in message.components:
        for component in row.get("components", []):
            if str(component.get("custom_id", "")).startswith(f"animate:{action}:"):
                return str(component["custom_id"])
    raise AssertionError(f"no {action} button on the message")


def modal_fields(opened: FakeInteraction) -> dict[str, dict[str, Any]]:
    """The modal's fields by label: the component inside each label."""
    assert opened.modal is not None, "expected a modal"
    return {c["label"]: c["component"] for c in opened.modal["components"] if c["type"] == 18}


def chosen(field: dict[str, Any]) -> list[str]:
    return [o["value"] for o in field["options"] if o.get("default")]


async def submit(world: World, opened: FakeInteraction, user=None, **values: Any
                 ) -> FakeInteraction:
    """Fill in the modal by label (Prompt, Resolution, Duration, Aspect ratio, Extras)."""
    fields = modal_fields(opened)
    given = {fields[label]["custom_id"]: value for label, value in values.items()}
    return await world.discord.submit_modal(opened, given, user=user)


async def video_by_dm(world: World, quote: FakeMessage) -> FakeMessage:
    """Confirm ``quote`` and lose its channel (Unknown Channel) while the create is held: the
    video the bot then posts, by DM."""
    world.api.hold_creates = asyncio.Event()
    await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: world.api.creates)
    world.discord.fail_next("POST", rf"/channels/{world.discord.channel_id}/", 404,
                            {"code": 10003, "message": "Unknown Channel"}, times=5)
    world.api.hold_creates.set()
    return await world.discord.wait_for_message(lambda m: m.videos)


async def posted_picture(world: World, user=STRANGER, files=(("cat.png", PNG, "image/png"),),
                         embeds=()) -> FakeMessage:
    return await world.discord.send_user_message(
        world.discord.channel_id, "look at this", user=user,
        attachments=[FakeFile(name, kind, data) for name, data, kind in files], embeds=embeds,
    )


async def menu(world: World, message: FakeMessage, user=MEMBER) -> FakeInteraction:
    opened = await world.discord.invoke_message_command("Animate", message.id, user=user)
    await world.discord.wait_for_callback(opened)
    return opened


async def video_message(world: World, quote: FakeMessage) -> FakeMessage:
    return await world.discord.wait_for_message(
        lambda m: m.videos and m.message_reference is not None
        and int(m.message_reference["message_id"]) == quote.id
    )


async def finished_video(world: World, **kwargs: Any) -> tuple[FakeMessage, FakeMessage]:
    """/animate with ``kwargs``, Confirm by its member: the quote and the posted video, once the
    quote says Done."""
    quote = await world.quote(**kwargs)
    await world.click(quote, "Confirm", user=kwargs.get("user", MEMBER))
    video = await video_message(world, quote)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    return quote, video
