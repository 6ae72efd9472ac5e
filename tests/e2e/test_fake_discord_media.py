"""The fake Discord's attachment URLs, message content rules and modal filling, as Discord
documents them (the end-to-end tests of the bot rely on these)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.fake_discord import FakeDiscord, FakeInteraction, FakeUser

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
BOB = FakeUser(id=7001, name="bob")


@pytest.fixture
async def fake():
    async with FakeDiscord() as fake:
        yield fake


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


async def test_attachment_urls_are_signed_and_expire_and_a_refetch_signs_them_again(fake):
    attachment = fake.add_attachment(PNG, "cat.png", "image/png")
    url = attachment["url"]
    assert {"ex=", "is=", "hm="} <= {part[:3] for part in url.split("?")[1].split("&")}
    assert await _get(url) == (200, PNG)
    assert (await _get(url.replace("hm=", "hm=0")))[0] == 404  # a forged signature
    fake.travel(fake.attachment_url_lifetime + 1)
    assert (await _get(url))[0] == 404
    assert fake.expired_fetches == 2
    fresh = fake.attachment_payload(fake._files[int(attachment["id"])])["url"]
    assert fresh != url
    assert await _get(fresh) == (200, PNG)


async def test_rest_hides_other_members_message_content_without_the_intent(fake):
    stored = fake._store_message(channel_id=fake.channel_id, author_id=BOB.id,
                                 payload={"content": "hello"}, files=[], flags=0)
    stored.attachments = [fake._store_file(PNG, "cat.png", "image/png")]
    url = f"{fake.api_base}/channels/{fake.channel_id}/messages/{stored.id}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        payload = await response.json()
    assert payload["content"] == ""
    assert payload["attachments"] == []
    # The bot's own messages keep everything (so a copy the bot posted can be read again).
    stored.author_id = fake.bot_user_id
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        payload = await response.json()
    assert payload["content"] == "hello"
    assert payload["attachments"][0]["filename"] == "cat.png"


def _opened(fake: FakeDiscord, components: list[dict]) -> FakeInteraction:
    inter = FakeInteraction(id=1, token="t", type=2, user=BOB, channel_id=fake.channel_id)
    inter.modal = {"custom_id": "m", "title": "Modal", "components": components}
    return inter


async def test_submitting_a_modal_follows_its_own_rules(fake):
    text = {"type": 18, "label": "Prompt",
            "component": {"type": 4, "custom_id": "p", "style": 2, "max_length": 10}}
    select = {"type": 18, "label": "Size", "component": {
        "type": 3, "custom_id": "s", "min_values": 1, "max_values": 1,
        "options": [{"label": "a", "value": "a", "default": True}, {"label": "b", "value": "b"}]}}
    opened = _opened(fake, [text, select])
    with pytest.raises(ValueError, match="required"):
        await fake.submit_modal(opened, {})
    with pytest.raises(ValueError, match="length"):
        await fake.submit_modal(opened, {"p": "x" * 11})
    with pytest.raises(ValueError, match="no option"):
        await fake.submit_modal(opened, {"p": "ok", "s": ["c"]})
    with pytest.raises(ValueError, match="takes 1 to 1"):
        await fake.submit_modal(opened, {"p": "ok", "s": ["a", "b"]})
    with pytest.raises(ValueError, match="no field"):
        await fake.submit_modal(opened, {"p": "ok", "nope": "x"})
