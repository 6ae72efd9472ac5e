"""A tiny real discord.py bot run in-process against tests.fakes.fake_discord."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yarl

from tests.fakes.fake_discord import ALL_PERMISSIONS, FakeDiscord, FakeUser

with warnings.catch_warnings():
    # discord.py imports the stdlib `audioop`, deprecated since Python 3.11: under `-W error` the
    # import itself would fail.  Once imported here, later `import discord` anywhere is silent.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord import app_commands
    from discord.ext import commands

pytestmark = pytest.mark.asyncio

GUILD_ID = 2000  # FakeDiscord's default guild
ALICE = FakeUser(id=5001, name="alice", permissions=ALL_PERMISSIONS)
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class PingView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Again", custom_id="ping:again", style=discord.ButtonStyle.primary)
    async def again(
        self, interaction: discord.Interaction, button: discord.ui.Button[PingView]
    ) -> None:
        await interaction.response.edit_message(
            content=f"clicked by {interaction.user.name}", view=None
        )


class RecordingTree(app_commands.CommandTree[commands.Bot]):
    errors: list[app_commands.AppCommandError]

    async def on_error(
        self, interaction: discord.Interaction[commands.Bot], error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(error)


class PingBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            tree_cls=RecordingTree,
        )
        self.seen: list[discord.Interaction[commands.Bot]] = []
        self.completed: list[str] = []
        self.tree_errors: list[app_commands.AppCommandError] = []
        assert isinstance(self.tree, RecordingTree)
        self.tree.errors = self.tree_errors
        self.user_messages: list[discord.Message] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s here before every re-IDENTIFY; a test has no rate limit."""

    async def on_message(self, message: discord.Message) -> None:
        if not message.author.bot:
            self.user_messages.append(message)

    async def setup_hook(self) -> None:
        @self.tree.command(name="ping", description="Answer with pong and a button")
        @app_commands.describe(image="A picture", note="Some text")
        async def ping(
            interaction: discord.Interaction[commands.Bot], image: discord.Attachment, note: str
        ) -> None:
            self.seen.append(interaction)
            await interaction.response.defer(thinking=True)
            data = await image.read()  # downloaded from the fake, not from a CDN
            await interaction.followup.send(
                f"pong {note}: {image.filename} {len(data)} bytes", view=PingView(), wait=True
            )

        @self.tree.command(name="secret", description="Ephemeral defer, two followups, an edit")
        async def secret(interaction: discord.Interaction[commands.Bot]) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send("first")  # replaces the thinking message
            await interaction.followup.send("second", ephemeral=False)
            await interaction.edit_original_response(content="edited first")

        @self.tree.command(name="dm", description="Send the user a DM")
        async def dm(interaction: discord.Interaction[commands.Bot]) -> None:
            await interaction.user.send(f"hello {interaction.user.name}")
            await interaction.response.send_message("sent", ephemeral=True)

        admin = app_commands.Group(name="admin", description="Admin tools", guild_ids=[GUILD_ID])

        @admin.command(name="status", description="Status report as a file")
        async def status(interaction: discord.Interaction[commands.Bot], level: int) -> None:
            report = discord.File(io.BytesIO(f"level,{level}\n".encode()), "status.csv")
            await interaction.response.send_message("report", file=report)

        self.tree.add_command(admin)
        await self.tree.sync()
        await self.tree.sync(guild=discord.Object(GUILD_ID))

    async def on_app_command_completion(
        self,
        interaction: discord.Interaction[commands.Bot],
        command: app_commands.Command[Any, ..., Any] | app_commands.ContextMenu,
    ) -> None:
        self.completed.append(command.name)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord() as fd:
        discord.http.Route.BASE = fd.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fd.gateway_url)
        try:
            yield fd
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


@pytest_asyncio.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[PingBot]:
    client = PingBot()
    runner = asyncio.create_task(client.start("fake-token"))
    ready = asyncio.create_task(fake.ready.wait())
    try:
        done, _ = await asyncio.wait(
            {runner, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED
        )
        if runner in done:
            runner.result()  # the bot died while starting: raise its error
        assert ready in done, "the bot did not connect to the fake within 5 s"
        yield client
    finally:
        ready.cancel()
        await client.close()
        await runner


async def text_channel(fake: FakeDiscord, client: commands.Bot) -> discord.TextChannel:
    channel = await fake.wait_for(lambda: client.get_channel(fake.channel_id))
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_bot_connects_and_syncs_commands(fake: FakeDiscord, bot: PingBot) -> None:
    assert fake.identify_count == 1
    assert fake.command_syncs == 1
    assert fake.guild_command_syncs == 1
    assert sorted(c["name"] for c in fake.global_commands) == ["dm", "ping", "secret"]
    (ping,) = [c for c in fake.global_commands if c["name"] == "ping"]
    assert [(o["name"], o["type"]) for o in ping["options"]] == [("image", 11), ("note", 3)]
    channel = await text_channel(fake, bot)
    assert channel.guild.id == fake.guild_id
    assert channel.permissions_for(channel.guild.me).send_messages


async def test_ping_defers_then_followup_replaces_thinking_and_button_edits(
    fake: FakeDiscord, bot: PingBot
) -> None:
    image = fake.add_attachment(PNG_BYTES, "cat.png", "image/png")
    inter = await fake.invoke("ping", {"image": image, "note": "hi"}, user=ALICE)

    # Wait for the bot's side, not just the fake's: discord.py registers the View only once it has
    # processed the followup's HTTP response, and drops clicks that arrive before that.
    await fake.wait_for(lambda: bot.completed == ["ping"])
    assert inter.callback_type == 5
    assert inter.callback_at is not None
    assert inter.callback_at - inter.sent_at < 3
    (followup_id,) = inter.followup_message_ids
    assert followup_id == inter.response_message_id  # the thinking message was replaced
    msg = fake.messages[followup_id]
    assert not msg.loading
    assert not msg.ephemeral
    assert msg.content == f"pong hi: cat.png {len(PNG_BYTES)} bytes"
    assert msg.interaction_id == inter.id
    assert msg.author_id == fake.bot_user_id
    assert msg.components[0]["components"][0]["custom_id"] == "ping:again"
    assert [m.id for m in fake.channel_messages(fake.channel_id)] == [followup_id]

    click = await fake.click(followup_id, "ping:again", user=ALICE)
    assert await fake.wait_for_callback(click) == 7
    assert click.response_message_id == followup_id
    assert msg.content == "clicked by alice"
    assert msg.components == []
    assert msg.edits == 1


async def test_channel_message_with_file_upload(fake: FakeDiscord, bot: PingBot) -> None:
    channel = await text_channel(fake, bot)
    sent = await channel.send("here", file=discord.File(io.BytesIO(b"hello world"), "hello.txt"))
    stored = fake.messages[sent.id]
    (attachment,) = stored.attachments
    assert (attachment.filename, attachment.data) == ("hello.txt", b"hello world")
    assert attachment.content_type == "text/plain"
    assert sent.attachments[0].size == 11
    assert await sent.attachments[0].read() == b"hello world"


async def test_thread_from_message(fake: FakeDiscord, bot: PingBot) -> None:
    channel = await text_channel(fake, bot)
    starter = await channel.send("job started")
    thread = await starter.create_thread(name="job 1")
    assert thread.id == starter.id
    assert fake.channels[thread.id]["type"] == 11
    assert fake.channels[thread.id]["parent_id"] == str(channel.id)
    assert [t["name"] for t in fake.threads()] == ["job 1"]

    inside = await thread.send("progress 50%")
    assert [m.content for m in fake.channel_messages(thread.id)] == ["progress 50%"]
    assert fake.messages[inside.id].channel_id == thread.id
    # THREAD_CREATE reached the bot's cache too.
    assert await fake.wait_for(lambda: bot.get_channel(thread.id)) is not None

    with pytest.raises(discord.HTTPException) as excinfo:
        await channel.create_thread(name="x" * 101, type=discord.ChannelType.public_thread)
    assert (excinfo.value.status, excinfo.value.code) == (400, 50035)


async def test_history_pages_through_every_message_as_discord_documents(
    fake: FakeDiscord, bot: PingBot
) -> None:
    channel = await text_channel(fake, bot)
    sent = [await channel.send(f"m{n}") for n in range(130)]
    # after=: oldest first, in pages of at most 100 (discord.py asks for 100 at a time).
    after = [m.id async for m in channel.history(limit=None, after=sent[9])]
    assert after == [m.id for m in sent[10:]]
    before = [m.id async for m in channel.history(limit=None, before=sent[120])]
    assert before == [m.id for m in reversed(sent[:120])]
    newest = [m.id async for m in channel.history(limit=3)]
    assert newest == [m.id for m in reversed(sent[-3:])]
    history_requests = [r for r in fake.requests if r[0] == "GET" and "/messages" in r[1]]
    assert len(history_requests) >= 4  # 120 after and 120 before take two pages each


async def test_oversized_upload_is_rejected_with_413(fake: FakeDiscord, bot: PingBot) -> None:
    fake.filesize_limit = 1024
    channel = await text_channel(fake, bot)
    with pytest.raises(discord.HTTPException) as excinfo:
        await channel.send(file=discord.File(io.BytesIO(b"x" * 2048), "big.bin"))
    assert (excinfo.value.status, excinfo.value.code) == (413, 40005)
    assert fake.channel_messages(fake.channel_id) == []


async def test_second_interaction_callback_is_rejected(fake: FakeDiscord, bot: PingBot) -> None:
    image = fake.add_attachment(PNG_BYTES, "cat.png", "image/png")
    inter = await fake.invoke("ping", {"image": image, "note": "x"}, user=ALICE)
    await fake.wait_for(lambda: inter.followup_message_ids)
    # A fresh InteractionResponse does not know the interaction was answered, so the request
    # reaches the fake (as when two bot processes answer the same interaction).
    with pytest.raises(discord.HTTPException) as excinfo:
        await discord.InteractionResponse(bot.seen[-1]).send_message("again")
    assert (excinfo.value.status, excinfo.value.code) == (400, 40060)
    assert (inter.callback_type, inter.callback_attempts) == (5, 2)


async def test_late_callback_is_unknown_interaction(fake: FakeDiscord, bot: PingBot) -> None:
    fake.interaction_timeout = -1.0  # every callback is "later than 3 s"
    image = fake.add_attachment(PNG_BYTES, "cat.png", "image/png")
    inter = await fake.invoke("ping", {"image": image, "note": "late"}, user=ALICE)
    error = await fake.wait_for(lambda: bot.tree_errors and bot.tree_errors[-1])
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, discord.NotFound)
    assert error.original.code == 10062
    assert (inter.callback_type, inter.callback_attempts) == (None, 1)


async def test_gateway_resume_after_drop(fake: FakeDiscord, bot: PingBot) -> None:
    await fake.drop_connection()
    await fake.wait_for(lambda: fake.resume_count == 1)
    assert fake.identify_count == 1
    image = fake.add_attachment(PNG_BYTES, "cat.png", "image/png")
    inter = await fake.invoke("ping", {"image": image, "note": "again"}, user=ALICE)
    assert await fake.wait_for_callback(inter) == 5


async def test_injected_429_is_retried(fake: FakeDiscord, bot: PingBot) -> None:
    channel = await text_channel(fake, bot)
    fake.fail_next("POST", r"^/channels/\d+/messages$", 429)
    sent = await channel.send("after a rate limit")
    assert fake.messages[sent.id].content == "after a rate limit"
    posts = [
        r.status for r in fake.request_log if r.method == "POST" and r.path.endswith("/messages")
    ]
    assert posts == [429, 200]


async def test_unknown_route_is_a_logged_404(
    fake: FakeDiscord, bot: PingBot, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="tests.fakes.fake_discord"),
        pytest.raises(discord.NotFound),
    ):
        await bot.http.request(discord.http.Route("GET", "/no/such/endpoint"))
    assert "no route for GET /no/such/endpoint" in caplog.text


async def test_ephemeral_defer_followups_and_edit_original(fake: FakeDiscord, bot: PingBot) -> None:
    inter = await fake.invoke("secret", user=ALICE)
    await fake.wait_for(lambda: "secret" in bot.completed)
    first, second = inter.followup_message_ids
    assert first == inter.response_message_id
    assert fake.messages[first].ephemeral  # flags come from the defer
    assert fake.messages[first].content == "edited first"
    assert fake.messages[first].edits == 1
    assert not fake.messages[second].ephemeral
    assert fake.messages[second].content == "second"


async def test_guild_subcommand_with_file_in_initial_response(
    fake: FakeDiscord, bot: PingBot
) -> None:
    assert [c["name"] for c in fake.guild_commands[GUILD_ID]] == ["admin"]
    inter = await fake.invoke("admin", {"level": 3}, user=ALICE, subcommand="status")
    await fake.wait_for(lambda: "status" in bot.completed)
    assert inter.data["guild_id"] == str(GUILD_ID)
    assert inter.callback_type == 4
    assert inter.response_message_id is not None
    msg = fake.messages[inter.response_message_id]
    assert msg.content == "report"
    (report,) = msg.attachments
    assert (report.filename, report.content_type, report.data) == (
        "status.csv",
        "text/csv",
        b"level,3\n",
    )


async def test_dm_and_user_messages_respect_message_content_intent(
    fake: FakeDiscord, bot: PingBot
) -> None:
    inter = await fake.invoke("dm", user=ALICE)
    assert await fake.wait_for_callback(inter) == 4
    (dm_channel,) = [c for c in fake.channels.values() if c["type"] == 1]
    dm_messages = fake.channel_messages(int(dm_channel["id"]))
    assert [m.content for m in dm_messages] == ["hello alice"]

    await fake.send_user_message(fake.channel_id, f"hi <@{fake.bot_user_id}>", user=ALICE)
    await fake.send_user_message(fake.channel_id, "no mention", user=ALICE)
    await fake.wait_for(lambda: len(bot.user_messages) == 2)
    # Without the message_content intent only messages mentioning the bot carry content.
    assert [m.content for m in bot.user_messages] == [f"hi <@{fake.bot_user_id}>", ""]
    assert bot.user_messages[0].author.id == ALICE.id


async def test_message_edit_and_delete(fake: FakeDiscord, bot: PingBot) -> None:
    channel = await text_channel(fake, bot)
    sent = await channel.send("v1", embed=discord.Embed(title="t"))
    edited = await sent.edit(content="v2")
    assert edited.content == "v2"
    stored = fake.messages[sent.id]
    assert (stored.content, stored.edits, stored.embeds[0]["title"]) == ("v2", 1, "t")
    await sent.delete()
    assert stored.deleted
    with pytest.raises(discord.NotFound) as excinfo:
        await sent.edit(content="v3")
    assert excinfo.value.code == 10008


async def test_unresumable_drop_makes_the_bot_identify_again(
    fake: FakeDiscord, bot: PingBot
) -> None:
    await fake.drop_connection(resumable=False)
    await fake.wait_for(lambda: fake.identify_count == 2)
    assert fake.resume_count == 0
    await fake.wait_connected()


async def test_raw_rest_answers(fake: FakeDiscord, bot: PingBot) -> None:
    channel = await text_channel(fake, bot)
    sent = await channel.send("to delete")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base}/users/@me") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["X-RateLimit-Bucket"]
            assert resp.headers["X-RateLimit-Remaining"] != "0"
        url = f"{fake.api_base}/channels/{channel.id}/messages/{sent.id}"
        async with session.delete(url) as resp:
            assert resp.status == 204
            assert "Content-Type" not in resp.headers
            assert await resp.read() == b""
        async with session.get(url) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == 10008


async def test_interactions_carry_the_users_and_the_guilds_locale(
    fake: FakeDiscord, bot: PingBot
) -> None:
    updated = asyncio.ensure_future(bot.wait_for("guild_update", timeout=5))
    await fake.set_preferred_locale("pt-BR")
    await updated
    guild = bot.get_guild(fake.guild_id)
    assert guild is not None
    assert guild.preferred_locale is discord.Locale.brazil_portuguese
    image = fake.add_attachment(PNG_BYTES, "cat.png", "image/png")
    await fake.invoke("ping", {"image": image, "note": "oi"},
                      user=FakeUser(id=8080, name="kenji", locale="ja"))
    await fake.wait_for(lambda: bot.completed == ["ping"])
    (seen,) = bot.seen
    assert seen.locale is discord.Locale.japanese
    assert seen.guild_locale is discord.Locale.brazil_portuguese
    with pytest.raises(ValueError, match="not a Discord locale"):
        await fake.set_preferred_locale("pt-PT")


@pytest.mark.parametrize(
    ("localized", "code"),
    [
        ({"name_localizations": {"xx-YY": "ping"}}, "LOCALE_INVALID"),
        ({"name_localizations": {"fr": "Pong Pong"}}, "APPLICATION_COMMAND_INVALID_NAME"),
        ({"description_localizations": {"ja": "x" * 101}}, "APPLICATION_COMMAND_INVALID_NAME"),
    ],
)
async def test_invalid_localizations_are_refused_like_discord(
    fake: FakeDiscord, bot: PingBot, localized: dict, code: str
) -> None:
    body = [{"name": "loc", "description": "Localised", "type": 1, **localized}]
    async with aiohttp.ClientSession() as session:
        url = f"{fake.api_base}/applications/{fake.application_id}/commands"
        async with session.put(url, json=body) as resp:
            assert resp.status == 400
            assert code in json.dumps(await resp.json())
