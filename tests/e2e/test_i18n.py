"""Languages end to end: the real bot against the fake Discord, with members and servers whose
clients speak Japanese, French, German or Korean (no catalogue: English)."""

import asyncio
import re

from tests.e2e.world import (
    MANAGER,
    MEMBER,
    menu,
    modal_fields,
    posted_picture,
    submit,
    video_message,
)
from tests.fakes.fake_discord import FakeUser
from tests.fakes.fake_shortapi import Plan

YUKI = FakeUser(id=7001, name="yuki", locale="ja")
CAMILLE = FakeUser(id=7002, name="camille", locale="fr")
JONAS = FakeUser(id=7003, name="jonas", locale="de")
MINJI = FakeUser(id=7004, name="minji", locale="ko")


async def server_speaks(world, locale: str) -> None:
    """The server's language changes (GUILD_UPDATE), and the bot has seen it."""
    updated = asyncio.ensure_future(world.bot.wait_for("guild_update", timeout=5))
    await world.discord.set_preferred_locale(locale)
    await updated
    assert world.bot.get_guild(world.discord.guild_id).preferred_locale.value == locale


def button_labels(message) -> list[str]:
    return [c.get("label") for row in message.components for c in row.get("components", [])]


async def test_a_quote_in_a_japanese_server_reads_japanese_through_to_the_video(world):
    await server_speaks(world, "ja")
    quote = await world.quote(user=YUKI)
    text = world.embed_text(quote.id)
    assert text.startswith("動画にする準備ができました\n")
    assert "**$0.170** · 利用上限内 · 有効期限 <t:" in text
    assert "720p · 5秒 · 16:9 · 音声なし · シングルショット" in text
    assert "「確定」を押すまで料金はかかりません" in text
    assert "Ready to animate" not in text
    assert button_labels(quote) == ["確定 · $0.170", "取り消す"]

    world.api.plan_next(Plan(statuses=[1, 2]))
    await world.click(quote, "Confirm", user=YUKI)
    posted = await world.discord.wait_for_message(lambda m: m.videos)
    assert posted.content.startswith(f"**the cat starts surfing** · <@{YUKI.id}>\n-# (720p · 5秒")
    assert posted.content.endswith(" · #1)")  # the job tag is the same in every language
    await world.discord.wait_for(lambda: "完了" in world.embed_text(quote.id))
    assert button_labels(world.discord.messages[quote.id]) == ["見る"]


async def test_private_answers_follow_the_member_and_the_quote_follows_the_server(world):
    quote = await world.quote(user=CAMILLE)  # an English server: its public card is English
    assert world.embed_text(quote.id).startswith("Ready to animate\n")
    assert button_labels(quote) == ["Confirm · $0.170", "Cancel"]
    quote = await world.quote(user=MEMBER)
    refused = await world.click(quote, "Confirm", user=CAMILLE)
    assert await world.private_reply(refused) == f"Seul <@{MEMBER.id}> peut confirmer ceci."

    usage = await world.answer(await world.discord.invoke("usage", {}, user=JONAS))
    german = world.embed_text(usage.id)
    assert german.startswith("Nutzung von /animate: du\n")
    assert "Tageslimit\n2,00\u00a0$" in german
    assert "Heute ausgegeben\n0,00\u00a0$" in german

    korean = await world.answer(await world.discord.invoke("usage", {}, user=MINJI))
    assert world.embed_text(korean.id).startswith("/animate usage: you\n")  # no Korean: English


async def test_a_limit_refusal_names_money_and_reset_time_in_the_members_language(world):
    await world.answer(await world.discord.invoke(
        "animate-admin", {"period": "daily", "amount": "0.10"}, user=MANAGER, subcommand="limit"
    ))
    refusal = await world.answer(await world.animate(user=YUKI))
    assert refusal.ephemeral
    text = refusal.content or ""
    assert text.startswith(
        "この動画は $0.170 ですが、あなたの1日の上限 $0.10 の残りは $0.10 です"
    )
    assert re.search(
        r"<t:\d+:f> にリセットされます。料金はかかっていません。$", text
    )

    french = await world.answer(await world.animate(user=CAMILLE))
    assert (french.content or "").startswith(
        "Cette vidéo coûte 0,170\u00a0$US, mais il reste 0,10\u00a0$US sur votre limite "
        "quotidienne de 0,10\u00a0$US"
    )
    assert await world.bot.ledger.ledger_rows() == []


async def test_a_failed_video_is_explained_and_refunded_in_the_servers_language(world):
    await server_speaks(world, "fr")
    quote = await world.quote(user=CAMILLE)
    world.api.plan_next(Plan(statuses=[3], error="render farm down"))
    click = await world.click(quote, "Confirm", user=CAMILLE)
    assert await world.private_reply(click) == (
        "**Votre vidéo n'a pas pu être créée.** Le service vidéo n'a pas pu créer cette vidéo "
        "(un problème de son côté). Réessayez dans un moment, ou avec d'autres réglages.\n"
        "-# (remboursée en totalité · #1)"
    )
    await world.discord.wait_for(lambda: "Impossible de créer" in world.embed_text(quote.id))
    assert "Remboursé en totalité." in world.embed_text(quote.id)
    assert "render farm" not in world.embed_text(quote.id)


async def test_admin_answers_and_the_settings_view_read_in_the_managers_language(world):
    manager_ja = FakeUser(id=MANAGER.id, name=MANAGER.name, permissions=MANAGER.permissions,
                          locale="ja")
    done = await world.answer(await world.discord.invoke(
        "animate-admin", {"period": "monthly", "amount": "5"}, user=manager_ja,
        subcommand="limit",
    ))
    assert done.content == "完了：サーバーの1か月の上限：$5.00。"
    manager_de = FakeUser(id=MANAGER.id, name=MANAGER.name, permissions=MANAGER.permissions,
                          locale="de")
    view = await world.answer(await world.discord.invoke(
        "animate-admin", {}, user=manager_de, subcommand="settings"
    ))
    text = world.embed_text(view.id)
    assert text.startswith("Einstellungen von /animate\n")
    assert "Monatslimit pro Mitglied\n5,00\u00a0$" in text
    assert "Kanäle\nalle Kanäle" in text
    # The audit trail was written while a Japanese client was talking; it reads in German.
    assert f"<@{MANAGER.id}>: Monatslimit des Servers: 5,00\u00a0$" in text


async def test_command_sync_carries_every_language_and_discord_accepts_it(world):
    commands = {c["name"]: c for c in world.discord.global_commands}
    assert set(commands) >= {"animate", "usage", "jobs", "animate-admin"}
    animate = commands["animate"]
    assert animate["name_localizations"]["ja"] == "アニメ化"
    assert animate["name_localizations"]["pt-BR"] == "animar"
    assert animate["description_localizations"]["ja"] == "画像を短い動画に変えます"
    spanish = "Convierte una imagen en un video corto"
    assert animate["description_localizations"]["es-419"] == spanish
    options = {o["name"]: o for o in animate["options"]}
    assert options["prompt"]["name_localizations"]["ja"] == "プロンプト"
    assert options["duration"]["description_localizations"]["fr"].startswith("Durée en secondes")
    five = next(c for c in options["duration"]["choices"] if c["value"] == 5)
    assert five["name_localizations"] == {
        "fr": "5 secondes", "de": "5 Sekunden", "es-ES": "5 segundos", "es-419": "5 segundos",
        "pt-BR": "5 segundos", "ja": "5秒",
    }
    admin = commands["animate-admin"]
    limit = next(o for o in admin["options"] if o["name"] == "limit")
    assert limit["name_localizations"]["de"] == "limit"
    assert limit["description_localizations"]["de"].startswith("Ein tägliches oder monatliches")
    # Members still invoke by the default names: a Japanese client's /アニメ化 arrives as animate.
    quote = await world.quote(user=YUKI)
    assert quote.components


async def test_the_context_menu_modal_and_the_result_buttons_speak_japanese(world):
    world.api.fetch_images = True
    await server_speaks(world, "ja")
    picture = await posted_picture(world)
    opened = await menu(world, picture, user=YUKI)
    assert opened.modal is not None
    assert opened.modal["title"] == "この画像を動画にする"
    fields = modal_fields(opened)
    assert set(fields) == {"プロンプト", "解像度", "長さ", "アスペクト比", "オプション"}
    assert [o["label"] for o in fields["長さ"]["options"]] == ["5秒", "8秒", "10秒"]
    submitted = await submit(world, opened, user=YUKI, プロンプト="猫がサーフィンを始める")
    quote = await world.menu_quote(submitted)
    assert world.embed_text(quote.id).startswith("動画にする準備ができました\n")
    world.api.plan_next(Plan(statuses=[1, 2]))
    await world.click(quote, "Confirm", user=YUKI)
    video = await video_message(world, quote)
    assert button_labels(video) == ["もう一度", "編集", "削除"]
