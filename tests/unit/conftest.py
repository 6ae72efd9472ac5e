"""Fixtures for the unit tests: the fake ShortAPI (``fake``) and a ShortAPI client on it whose
backoff sleeps are recorded in ``client.sleeps`` instead of slept (``client``)."""

import aiohttp
import pytest

from bot.config import Secret
from bot.shortapi import ShortAPIClient
from tests.fakes.fake_shortapi import FakeShortAPI


@pytest.fixture
async def fake():
    async with FakeShortAPI() as fake:
        yield fake


@pytest.fixture
async def client(fake):
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with aiohttp.ClientSession() as session:
        client = ShortAPIClient(session, fake.base_url, Secret(fake.key), sleep=no_sleep)
        client.sleeps = sleeps  # type: ignore[attr-defined]
        yield client
