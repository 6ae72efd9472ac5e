"""Fixtures for the storage tests, each run on SQLite and on PostgreSQL (``database_url`` in
``tests/conftest.py``)."""

import pytest

from bot.ledger import Ledger


@pytest.fixture
async def ledger(database_url):
    """A ledger on a fresh database of each engine, default limits."""
    async with await Ledger.open(database_url) as ledger:
        yield ledger
