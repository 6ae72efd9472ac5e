"""Fixtures for the job runner's tests: ``env`` is a started runner on a fresh database
and the fake ShortAPI."""

import pytest

from tests.helpers import running


@pytest.fixture
async def env(tmp_path):
    async with running(tmp_path) as world:
        yield world
