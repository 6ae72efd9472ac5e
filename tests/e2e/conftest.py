"""Fixtures for the end-to-end tests: the bot running in this process against the fake
Discord and the fake ShortAPI (``tests.e2e.world``)."""

import pytest

from tests.e2e.world import running_world


@pytest.fixture
async def world(tmp_path):
    """A running bot on a fresh SQLite database, with its fakes (a test needing other settings
    calls ``running_world(tmp_path, SETTING=...)`` itself)."""
    async with running_world(tmp_path) as world:
        yield world
