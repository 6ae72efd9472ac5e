"""The fleet's turns at the provider when MAX_PROVIDER_RPS is too small to share out.

Each process normally paces itself at its share of the cap (``bot.ratelimit``): at most
``floor(cap / processes)`` requests in any window, which adds up to the cap at most. Below one
request per window each (a cap of 2 for 3 processes), every process would still send one, and
the fleet would send more than the cap; then each request first takes a turn here, in one
sliding log of the fleet's sends (the database's clock, under one advisory lock).
"""

from __future__ import annotations

from typing import Final

from bot.storage import Database

# The advisory lock for the log (guilds' ids are snowflakes, far above; the fleet's line is 0).
PACE_LOCK: Final = 1


class Pace:
    db: Database

    async def provider_turn(self, per_span: int, span: float) -> float:
        """Take a turn to send one provider request, at most ``per_span`` in any ``span``
        seconds across the fleet: 0.0 when taken (and counted), else how long until one may
        be."""
        async with self.db.transaction() as db:
            await db.lock_guild(PACE_LOCK)
            row = await db.fetchone(f"SELECT {self.db.now_sql} AS now")
            assert row is not None
            now = float(row["now"])
            await db.execute("DELETE FROM provider_sends WHERE at <= ?", (now - span,))
            sends = [float(r["at"]) for r in await db.fetchall(
                "SELECT at FROM provider_sends ORDER BY at"
            )]
            if len(sends) >= per_span:
                return max(0.001, sends[len(sends) - per_span] + span - now)
            await db.execute("INSERT INTO provider_sends (at) VALUES (?)", (now,))
        return 0.0
