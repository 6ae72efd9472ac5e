"""The screens members and owners meet, captured from the real bot against the fake Discord
and drawn as Discord's dark theme shows them.

``python -m tests.screens [--out docs/screens]`` runs each scene below end to end (the same
flows ``tests/e2e/test_ui.py`` checks), keeps the message payloads the fake Discord stored at
each moment, and writes one PNG per screen plus ``docs/screens.md``. Run it after changing
anything a member sees; ``tests/e2e/test_screens.py`` checks the page lists every scene.
"""

from __future__ import annotations

import asyncio
import copy
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from tests.e2e.world import MANAGER, MEMBER, STRANGER, World, running_world
from tests.fakes.fake_discord import FakeFile, FakeInteraction, FakeMessage, FakeUser
from tests.fakes.fake_shortapi import Plan
from tests.screens.draw import Canvas, Names, draw_message

BOT = 1000


def sample_picture() -> bytes:
    """A picture to animate: a small seaside drawn here (no file to ship)."""
    image = Image.new("RGB", (640, 400))
    draw = ImageDraw.Draw(image)
    for y in range(400):
        shade = y / 400
        sky = (int(250 - 80 * shade), int(170 - 40 * shade), int(120 + 90 * shade))
        draw.line((0, y, 640, y), fill=sky if y < 240 else (30, 90 + y // 6, 150))
    draw.ellipse((250, 150, 390, 290), fill=(255, 214, 120))
    draw.rectangle((0, 240, 640, 400), fill=(28, 96, 150))
    for x in range(0, 640, 40):
        draw.arc((x, 250, x + 40, 270), 0, 180, fill=(200, 230, 250), width=3)
    draw.polygon([(300, 300), (360, 300), (345, 320), (315, 320)], fill=(60, 40, 30))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


PICTURE = sample_picture()


@dataclass
class Shot:
    """One message as it looked at one moment."""

    message: dict[str, Any]
    header: str | None = None
    author: str = "Animate"
    bot: bool = True


@dataclass
class Screen:
    slug: str
    title: str
    caption: str
    who: str  # member, bystander or owner
    shots: list[Shot] = field(default_factory=list)


@dataclass
class Studio:
    """Captures shots from a running world."""

    world: World
    files: dict[str, bytes] = field(default_factory=dict)

    def shot(self, message: FakeMessage, *, header: str | None = None) -> Shot:
        """The message as stored now (embeds as the bot sent them)."""
        attachments = []
        for f in message.attachments:
            key = f"file:{f.id}"
            self.files[key] = f.data
            entry = {"filename": f.filename, "url": key, "content_type": f.content_type}
            if f.filename.endswith(".mp4"):
                self.files["poster"] = PICTURE
                entry["poster"] = "poster"
            attachments.append(entry)
        payload = {
            "content": message.content or "",
            "embeds": copy.deepcopy(message.embeds),
            "components": copy.deepcopy(message.components),
            "attachments": attachments,
            "flags": message.flags,
        }
        author = "Animate"
        bot = message.author_id == BOT
        if not bot:
            user = self.world.discord.users.get(message.author_id)
            author = user.name if user else "member"
        return Shot(payload, header, author, bot)

    def fetch(self, url: str) -> bytes | None:
        if url in self.files:
            return self.files[url]
        for f in self.world.discord._files.values():  # a picture the member uploaded
            if str(f.id) in url:
                return f.data
        return None

    async def answer(self, interaction: FakeInteraction) -> FakeMessage:
        return await self.world.answer(interaction)

    def private(self, interaction: FakeInteraction) -> list[FakeMessage]:
        ids = [interaction.response_message_id, *interaction.followup_message_ids]
        return [self.world.discord.messages[i] for i in ids
                if i in self.world.discord.messages and self.world.discord.messages[i].ephemeral
                and not self.world.discord.messages[i].deleted]


USED = "{user} used /animate"


async def scene_quote(studio: Studio) -> list[Screen]:
    world = studio.world
    interaction = await world.animate(image=PICTURE, prompt="the sea starts waving at the sun")
    quote = await world.answer(interaction)
    notes = await world.discord.wait_for(lambda: studio.private(interaction))
    return [Screen(
        "quote", "The quote", "After /animate everyone sees the price and that it fits the "
        "member's limits; the picture is a thumbnail; Confirm carries the price. The member "
        "alone sees what their closest limit would have left.", "member and bystanders",
        [studio.shot(quote, header=USED.format(user=MEMBER.name)),
         studio.shot(notes[0], header=USED.format(user=MEMBER.name))],
    )]


async def scene_progress_and_done(studio: Studio) -> list[Screen]:
    world = studio.world
    earlier = await world.quote(image=PICTURE, prompt="a warm-up video")
    await world.click(earlier, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(earlier.id))
    world.api.hold_queries = asyncio.Event()
    world.api.plan_next(Plan(statuses=[1, 1, 2]))
    quote = await world.quote(image=PICTURE, prompt="the sea starts waving at the sun")
    asked = len(world.api.queries)
    await world.click(quote, "Confirm")
    await world.api.wait_for(lambda: len(world.api.queries) > asked)
    job = await world.bot.ledger.get_job(2)
    world.bot.side.notifier._typical.clear()  # read again: the warm-up video is done now
    await world.bot.side.notifier.progress(job, "rendering", 0.0)
    progress = studio.shot(world.discord.messages[quote.id],
                           header=USED.format(user=MEMBER.name))
    world.api.hold_queries.set()
    video = await world.discord.wait_for_message(lambda m: m.videos and "· #2)" in m.content)
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    return [
        Screen("progress", "While it is made", "Plain words for where the job is, the start "
               "as a live relative time, and how long such a video usually takes (from the "
               "videos already made). No buttons that do nothing.", "member and bystanders",
               [progress]),
        Screen("done", "Done", "The card turns green with a Watch link; the video is posted in "
               "the channel as a reply to it: the prompt in bold, the member, the settings in "
               "small text, no price; Again, Edit and Delete under it.",
               "member and bystanders",
               [studio.shot(world.discord.messages[quote.id],
                            header=USED.format(user=MEMBER.name)),
                studio.shot(video, header="replying to Animate")]),
    ]


async def scene_failed(studio: Studio) -> list[Screen]:
    world = studio.world
    world.api.plan_next(Plan(statuses=[1, 3], error="content policy violation (nsfw)"))
    quote = await world.quote(image=PICTURE, prompt="a dragon over the sea")
    click = await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    private = await world.discord.wait_for(lambda: studio.private(click))
    return [Screen(
        "failed", "A video that could not be made", "In public the card is neutral (refunded "
        "in full, Again and Edit for anyone). The reason goes to the member alone, on their "
        "Confirm (a DM after 15 minutes), with Try again and Edit prompt. No thread.",
        "member and bystanders",
        [studio.shot(world.discord.messages[quote.id], header=USED.format(user=MEMBER.name)),
         studio.shot(private[0])],
    )]


async def scene_cancelled_and_expired(studio: Studio) -> list[Screen]:
    world = studio.world
    cancelled = await world.quote(image=PICTURE, prompt="the sea starts waving at the sun")
    await world.discord.wait_for_callback(await world.click(cancelled, "Cancel"))
    await world.discord.wait_for(lambda: "Cancelled" in world.embed_text(cancelled.id))
    expired = await world.quote(image=PICTURE, prompt="a boat sails into the sunset")
    quote_id = world.quote_id(expired)
    while (await world.bot.ledger.get_quote(quote_id)).message_id is None:  # noqa: ASYNC110
        await asyncio.sleep(0.02)  # a row has no event
    clock = world.bot.clock
    world.bot.clock = lambda: clock() + 10**6
    try:
        await world.bot.quote_expiry.sweep()  # nobody clicked: it shrinks by itself
        await world.discord.wait_for(lambda: "Quote expired" in world.embed_text(expired.id))
    finally:
        world.bot.clock = clock
    return [Screen(
        "ended", "Cancelled and expired quotes", "A quote that came to nothing shrinks to one "
        "line with its picture as the icon. An expired one shrinks by itself when its time is "
        "up, whether or not anyone clicks, and offers New quote (same picture and settings, "
        "for whoever presses).", "member and bystanders",
        [studio.shot(world.discord.messages[cancelled.id], header=USED.format(user=MEMBER.name)),
         studio.shot(world.discord.messages[expired.id], header=USED.format(user=MEMBER.name))],
    )]


async def scene_refusals(studio: Studio) -> list[Screen]:
    world = studio.world
    not_offered = await world.answer(await world.animate(
        image=PICTURE, prompt="the sea starts waving at the sun", resolution="1080p",
        duration=10,
    ))
    await world.bot.ledger.policies.set_limit(
        world.discord.guild_id, MANAGER.id, world.bot.clock(), period="daily", value=300,
        member_id=MEMBER.id,
    )
    over = await world.answer(await world.animate(
        image=PICTURE, prompt="the sea starts waving at the sun", resolution="1080p",
    ))
    return [
        Screen("not-offered", "Settings the provider does not make", "1080p at 10 s is "
               "refused at once and privately (never a public \"thinking…\"), with the two "
               "nearest choices and their prices as buttons.", "member",
               [studio.shot(not_offered, header=USED.format(user=MEMBER.name))]),
        Screen("over-limit", "Over a limit", "Refused privately, with when the limit resets "
               "(in the member's own clock) and the settings that still fit as buttons: the "
               "nearest, and the cheapest.", "member",
               [studio.shot(over, header=USED.format(user=MEMBER.name))]),
    ]


async def scene_menu(studio: Studio) -> list[Screen]:
    world = studio.world
    posted = await world.discord.send_user_message(
        world.discord.channel_id, "sunset from the pier", user=STRANGER,
        attachments=[FakeFile("pier.png", "image/png", PICTURE)],
    )
    opened = await world.discord.invoke_message_command("Animate", posted.id, user=MEMBER)
    await world.discord.wait_for_callback(opened)
    assert opened.modal is not None
    fields = {c["label"]: c["component"] for c in opened.modal["components"] if c["type"] == 18}
    await world.discord.submit_modal(
        opened, {fields["Prompt"]["custom_id"]: "the waves roll in"}, user=MEMBER
    )
    quote = await world.discord.wait_for_message(
        lambda m: m.embeds and m.message_reference is not None
    )
    return [Screen(
        "menu", "A quote from the Animate menu", "Right-click a picture → Apps → Animate: the "
        "quote replies to that message (without a ping) and names who posted the picture.",
        "member and bystanders",
        [studio.shot(posted), studio.shot(quote, header=f"@{STRANGER.name} sunset from the pier")],
    )]


async def scene_usage(studio: Studio) -> list[Screen]:
    world = studio.world
    quote = await world.quote(image=PICTURE, prompt="the sea starts waving at the sun")
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
    world.api.plan_next(Plan(statuses=[3]))
    failed = await world.quote(image=PICTURE, prompt="a dragon over the sea", resolution="1080p")
    await world.click(failed, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(failed.id))
    usage = await world.answer(await world.discord.invoke("usage", user=MEMBER))
    jobs = await world.answer(await world.discord.invoke("jobs", user=MEMBER))
    return [Screen(
        "usage", "/usage and /jobs", "Balances and limits, privately; each job with its date, "
        "the start of its prompt, and a refunded price struck through.", "member",
        [studio.shot(usage, header=f"{MEMBER.name} used /usage"),
         studio.shot(jobs, header=f"{MEMBER.name} used /jobs")],
    )]


async def scene_japanese(studio: Studio) -> list[Screen]:
    world = studio.world
    updated = asyncio.ensure_future(world.bot.wait_for("guild_update", timeout=5))
    await world.discord.set_preferred_locale("ja")
    await updated
    yuki = FakeUser(id=7001, name="yuki", locale="ja")
    interaction = await world.animate(image=PICTURE, prompt="海が太陽に手を振る", user=yuki)
    quote = await world.answer(interaction)
    await world.click(quote, "Confirm", user=yuki)
    video = await world.discord.wait_for_message(lambda m: m.videos)
    await world.discord.wait_for(lambda: "完了" in world.embed_text(quote.id))
    return [Screen(
        "japanese", "In a Japanese server", "Public cards follow the server's language (here "
        "Japanese: 動画にする, the plain word); prices keep their mills; the job number reads the "
        "same in every language.", "member and bystanders",
        [studio.shot(world.discord.messages[quote.id], header="yuki used /animate"),
         studio.shot(video, header="replying to Animate")],
    )]


async def scene_owner(studio: Studio) -> list[Screen]:
    world = studio.world
    settings = await world.answer(await world.discord.invoke(
        "animate-admin", {}, user=MANAGER, subcommand="settings"
    ))
    return [Screen(
        "owner-settings", "/animate-admin settings", "What a server manager sees: the limits "
        "in force, channels, blocked words and the latest changes.", "owner",
        [studio.shot(settings, header=f"{MANAGER.name} used /animate-admin settings")],
    )]


async def scene_owner_job(studio: Studio) -> list[Screen]:
    world = studio.world
    world.api.plan_next(Plan(statuses=[1, 3], error="GPU pool exhausted (node-7), retry later"))
    quote = await world.quote(image=PICTURE, prompt="the sea starts waving at the sun")
    await world.click(quote, "Confirm")
    await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(quote.id))
    shown = await world.answer(await world.discord.invoke(
        "animate-admin", {"job": 1}, user=MANAGER, subcommand="job"
    ))
    return [Screen(
        "owner-job", "/animate-admin job", "One job in detail, privately: for a failed one, "
        "what the member was told (a category in their language) and the error as recorded, "
        "in the provider's own words (escaped, at most 1,000 characters). Members never see "
        "those words.", "owner",
        [studio.shot(shown, header=f"{MANAGER.name} used /animate-admin job")],
    )]


async def scene_approval(studio: Studio) -> list[Screen]:
    world = studio.world
    channel = world.discord.add_channel("approvals")
    await world.discord.wait_for(lambda: world.bot.get_channel(channel))
    await world.answer(await world.discord.invoke(
        "animate-admin", {"above": "0.50", "channel": channel}, user=MANAGER,
        subcommand="approvals",
    ))
    quote = await world.quote(image=PICTURE, prompt="the sea starts waving at the sun",
                              resolution="1080p", duration=8)
    await world.click(quote, "Confirm")
    card = await world.discord.wait_for(lambda: next(
        (m for m in world.discord.messages.values()
         if m.channel_id == channel and m.embeds and not m.deleted), None
    ))
    waiting = studio.shot(card)
    approve = next(c["custom_id"] for row in card.components for c in row["components"]
                   if c["custom_id"].startswith("animate:approval:approve:"))
    await world.discord.click(card.id, approve, user=MANAGER)
    await world.discord.wait_for(lambda: "Approved" in world.embed_text(card.id))
    await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id), timeout=20)
    return [Screen(
        "approval", "Approval above a price", "Where the server approves expensive jobs, the "
        "card waits in the approvals channel with Approve and Deny; once decided it says how "
        "and by whom, and keeps no buttons that would do nothing.", "owner",
        [waiting, studio.shot(world.discord.messages[card.id])],
    )]


Scene = Callable[[Studio], Awaitable[list[Screen]]]
SCENES: tuple[Scene, ...] = (
    scene_quote, scene_progress_and_done, scene_failed, scene_cancelled_and_expired,
    scene_refusals, scene_menu, scene_usage, scene_japanese, scene_owner, scene_owner_job,
    scene_approval,
)


async def capture(tmp_path: Path, scenes: tuple[Scene, ...] = SCENES
                  ) -> tuple[list[Screen], Studio, Names]:
    """Every scene on a fresh bot; the screens, and what draws them."""
    screens: list[Screen] = []
    studio: Studio | None = None
    names = Names()
    for index, scene in enumerate(scenes):
        folder = tmp_path / str(index)
        folder.mkdir(parents=True, exist_ok=True)
        async with running_world(folder) as world:
            # discord.py finishes its start-up (READY) in a task of its own: closing a bot
            # before it has would leave that task to run on a closed client.
            await asyncio.wait_for(world.bot.wait_until_ready(), 10)
            world.api.fetch_images = False
            studio = studio or Studio(world)
            studio.world = world
            screens += await scene(studio)
            names.users.update({u.id: u.name for u in world.discord.users.values()})
            names.channels[world.discord.channel_id] = "animate"
            names.now = world.bot.clock()
    assert studio is not None
    return screens, studio, names


def render(screen: Screen, studio: Studio, names: Names) -> Image.Image:
    canvas = Canvas()
    for shot in screen.shots:
        draw_message(canvas, shot.message, names, studio.fetch, header=shot.header,
                     author=shot.author, bot=shot.bot)
    return canvas.crop()


PAGE_HEAD = """# What members and owners see

Every picture below is drawn from the messages the bot really sends: `python -m tests.screens`
runs each flow end to end against the fake Discord, keeps the payloads it stored, and draws
them as Discord's dark theme shows them (Pillow; `tests/screens/draw.py`). Run it again after
changing anything a member sees; `tests/e2e/test_ui.py` checks the same payloads.

What is public and what is private:

- **Public** (everyone in the channel): the quote (price, and whether it fits the member's
  limits), its progress, the Done card with a **Watch** link, the video as a reply to the card,
  and a neutral card for a video that could not be made.
- **Private** (the member only): balances and limits, every refusal, and why a video could not
  be made (on their Confirm while its token lives, else a DM; once, across restarts).
- **Managers only** (Manage Server): `/animate-admin`, whose `job` shows a failed job's error in
  the provider's own words; the approval card in the server's approvals channel.

Nothing on a final card is dead: a decided, finished, cancelled or expired card keeps only the
buttons that still do something, and every button keeps working after a restart.
"""


def page(screens: list[Screen]) -> str:
    parts = [PAGE_HEAD]
    for screen in screens:
        parts.append(f"## {screen.title}\n\n*Seen by: {screen.who}.* {screen.caption}\n\n"
                     f"![{screen.title}](screens/{screen.slug}.png)\n")
    return "\n".join(parts)


async def write(out: Path, page_path: Path, tmp_path: Path) -> list[Path]:
    screens, studio, names = await capture(tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for screen in screens:
        path = out / f"{screen.slug}.png"
        render(screen, studio, names).save(path, optimize=True)
        written.append(path)
    page_path.write_text(page(screens))
    return written
