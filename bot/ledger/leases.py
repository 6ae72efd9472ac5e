"""Which process works which job: a worker lease per process, an owner per job.

A process joins the fleet as a worker with a lease (``LEASE_SECONDS``) it renews while it lives.
A job is worked only by its ``owner``, and only while that owner's lease runs: the jobs of a
process that died (kill -9, machine gone) become claimable when its lease runs out, those of a
process that stopped cleanly at once (``leave_fleet``). Claims take the jobs with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two processes never claim the same job;
SQLite has one process, whose lease is trivially its own. Times are the database's clock.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Final

from bot.errors import DatabaseUnavailable
from bot.models import AWAITING_APPROVAL, JOB_SELECT, UNFINISHED_STATES, Job, job_from_row
from bot.storage import Connection, Database

log = logging.getLogger(__name__)

# A provider callback may reach any process: the one that holds the job hears it here.
POKE_CHANNEL: Final = "animate_job_poke"
# Tokens in one statement of ``poke_by_tokens`` (a statement's parameters are bounded).
TOKENS_PER_STATEMENT: Final = 500
# A job ended somewhere in the fleet: every process looks whether its waiting line can move.
SLOT_CHANNEL: Final = "animate_slot_freed"
# The advisory lock that serialises slot grants across the fleet (no guild has id 0).
FLEET_LOCK: Final = 0
# A process stopped cleanly: the others claim its jobs now, not at their next round.
LEFT_CHANNEL: Final = "animate_worker_left"
# How long the record of a worker whose lease ended is kept (seconds): jobs it held are shared
# out for a while after, and an operator may look at it; then a clean stop clears it.
WORKERS_KEPT: Final = 86400


def process_namespace() -> str | None:
    """Where this process's pids mean something: the machine's boot and its pid namespace.
    Two processes may judge each other's pid only when this is the same for both; processes
    that share a host name but not a pid namespace (compose's fixed ``hostname:``,
    ``network_mode: host``, Kubernetes ``hostNetwork``, two containers both pid 1) differ here.
    None where it cannot be known (no /proc): then a lease ends only by running out."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pids = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}:{pids}"


def this_host() -> str:
    """The ``host`` a worker records: its host name, and its pid namespace when known (see
    ``process_namespace``): a lease whose ``host`` equals ours names a pid we can check."""
    namespace = process_namespace()
    name = socket.gethostname()
    return name if namespace is None else f"{name} {namespace}"


def _in_slot(table: str) -> str:
    """SQL: the job holds one of the fleet's slots (started, or granted one to start)."""
    return (f"({table}.state IN ('submitting', 'running', 'succeeded') "
            f"OR ({table}.state = 'reserved' AND {table}.slot_at IS NOT NULL))")

def _startable(table: str) -> str:
    """SQL: a waiting job that may start as soon as the fleet has a slot: it has one already,
    or its member holds fewer slots than the cap (the one parameter)."""
    return (f"({table}.slot_at IS NOT NULL OR (SELECT COUNT(*) FROM jobs k "  # noqa: S608
            f"WHERE k.user_id = {table}.user_id AND {_in_slot('k')}) < ?)")

# A job is owed work until its member has heard how it ended: unfinished, or final and untold.
# One awaiting approval is nobody's to work until it is decided (``bot.ledger.approvals``).
_OWED = "(state IN ({}) OR (told_at IS NULL AND state != '{}'))".format(
    ",".join(f"'{state}'" for state in UNFINISHED_STATES), AWAITING_APPROVAL
)


class Leases:
    db: Database
    worker_id: str | None  # this process's (``bot.ledger.jobs.Jobs``)

    def _live(self) -> str:
        return f"SELECT id FROM workers WHERE lease_until > {self.db.now_sql}"  # noqa: S608

    async def join_fleet(
        self, worker: str, seconds: float, *, host: str, pid: int, detail: str
    ) -> None:
        now = self.db.now_sql
        async with self.db.transaction() as db:
            await db.execute(
                f"INSERT INTO workers (id, lease_until, started_at, host, pid, detail) "  # noqa: S608
                f"VALUES (?, {now} + ?, {now}, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
                (worker, seconds, host, pid, detail),
            )

    async def live_workers_on(self, host: str) -> list[tuple[str, int]]:
        """(worker, pid) of the live leases taken on ``host``."""
        rows = await self.db.fetchall(
            f"SELECT id, pid FROM workers WHERE host = ? "  # noqa: S608
            f"AND lease_until > {self.db.now_sql}",
            (host,),
        )
        return [(str(row["id"]), int(row["pid"])) for row in rows]

    async def end_lease(self, worker: str) -> None:
        """A worker known to be dead (its process is gone): its jobs are claimable now."""
        async with self.db.transaction() as db:
            await db.execute("UPDATE workers SET lease_until = 0 WHERE id = ?", (worker,))

    async def renew_lease(self, worker: str, seconds: float) -> bool:
        """Extend the lease; False when it had run out (others may have claimed our jobs)."""
        now = self.db.now_sql
        async with self.db.transaction() as db:
            changed = await db.execute(
                f"UPDATE workers SET lease_until = {now} + ? "  # noqa: S608
                f"WHERE id = ? AND lease_until > {now}",
                (seconds, worker),
            )
        return changed == 1

    async def counted_out(self, worker: str, seconds: float) -> bool:
        """Whether another live worker may have counted the fleet without ``worker`` (whose
        lease ran out): one that renewed its lease after ours ran out (each counts right after
        renewing; their leases taken as ``seconds`` long, like ours). A worker whose record is
        gone was counted out."""
        mine = await self.db.fetchone(
            "SELECT lease_until FROM workers WHERE id = ?", (worker,)
        )
        if mine is None:
            return True
        row = await self.db.fetchone(
            f"SELECT COUNT(*) AS n FROM workers WHERE id != ? "  # noqa: S608
            f"AND lease_until > {self.db.now_sql} AND lease_until - ? > ?",
            (worker, seconds, float(mine["lease_until"])),
        )
        return row is not None and int(row["n"]) > 0

    async def claim_jobs(
        self, worker: str, *, limit: int = 1000, waiting: int | None = None,
        max_per_user: int = 1000, shared_for: float | None = None,
    ) -> list[Job]:
        """Take the jobs owed work (unfinished, or final and untold) that nobody works (no
        owner, or an owner whose lease ran out), oldest first; returns them as now ``worker``'s.

        ``waiting``: how many jobs not yet sent to the provider (``reserved``) this worker
        holds at most, so that the fleet's waiting line is shared out in small batches in
        confirm order rather than one process holding a burst it sends at its share of the
        rate while the others idle. A job whose member cannot start another now (their
        ``max_per_user`` jobs hold slots) does not count, and every waiting job older than the
        youngest one held here is taken whatever the room (the oldest jobs are always held by
        someone). None: every reserved job (one process).

        ``shared_for``: for this many seconds after a worker's lease ran out, its started jobs
        are shared out over the live workers (each takes those whose id falls to it), so that
        every process asks the provider about its part at its share of the rate, rather than
        the first to look taking them all; after that (a worker that did not claim its part)
        anyone takes them. None: the first to look takes them all."""
        async with self.db.transaction() as db:
            part, part_args = await self._part_of(db, worker, shared_for)
            if waiting is None:
                rows = await db.fetchall(
                    f"SELECT id FROM jobs WHERE {_OWED} "  # noqa: S608
                    f"AND (owner IS NULL OR owner NOT IN ({self._live()})) "
                    f"AND (state = 'reserved' OR {part}) "
                    f"ORDER BY id LIMIT ?{self.db.skip_locked}",
                    (*part_args, limit),
                )
                return await _take(db, worker, [int(row["id"]) for row in rows])
            rows = await db.fetchall(
                f"SELECT id FROM jobs WHERE {_OWED} AND state != 'reserved' "  # noqa: S608
                f"AND (owner IS NULL OR owner NOT IN ({self._live()})) AND {part} "
                f"ORDER BY id LIMIT ?{self.db.skip_locked}",
                (*part_args, limit),
            )
            held = await db.fetchone(
                f"SELECT COUNT(*) AS n, MAX(j.id) AS newest FROM jobs j "  # noqa: S608
                f"WHERE j.owner = ? AND j.state = 'reserved' AND {_startable('j')}",
                (worker, max_per_user),
            )
            assert held is not None
            room = max(0, waiting - int(held["n"]))
            if held["newest"] is not None:
                older = await db.fetchone(
                    f"SELECT COUNT(*) AS n FROM jobs WHERE state = 'reserved' "  # noqa: S608
                    f"AND id < ? AND (owner IS NULL OR owner NOT IN ({self._live()}))",
                    (int(held["newest"]),),
                )
                room += 0 if older is None else int(older["n"])
            room = min(room, limit)
            if room:
                rows += await db.fetchall(
                    f"SELECT id FROM jobs WHERE state = 'reserved' "  # noqa: S608
                    f"AND (owner IS NULL OR owner NOT IN ({self._live()})) "
                    f"ORDER BY id LIMIT ?{self.db.skip_locked}",
                    (room,),
                )
            return await _take(db, worker, sorted(int(row["id"]) for row in rows))

    async def _part_of(
        self, db: Connection, worker: str, shared_for: float | None
    ) -> tuple[str, tuple[object, ...]]:
        """SQL (and its parameters): a started job this worker may take over now. With
        ``shared_for``, the jobs of a lease that ran out less than that long ago are shared by
        id over the live workers (sorted by id, this one counted in)."""
        if shared_for is None:
            return "1 = 1", ()
        rows = await db.fetchall(
            f"SELECT id FROM workers WHERE lease_until > {self.db.now_sql} ORDER BY id"  # noqa: S608
        )
        live = sorted({str(row["id"]) for row in rows} | {worker})
        if len(live) == 1:
            return "1 = 1", ()
        recent = (f"SELECT id FROM workers "  # noqa: S608
                  f"WHERE lease_until > {self.db.now_sql} - ?")
        return (
            f"(id % ? = ? OR owner IS NULL OR owner NOT IN ({recent}))",
            (len(live), live.index(worker), shared_for),
        )

    async def hand_back(
        self, worker: str, queued: list[int], *, keep: int, max_per_user: int = 1000
    ) -> list[int]:
        """Give back to the fleet the jobs of ``queued`` (waiting in this worker's line,
        nothing working them) beyond the ``keep`` oldest not yet sent that this worker holds:
        another process with room claims them (``claim_jobs``). Only jobs without a slot.
        Returns the jobs handed back (they are no longer this worker's)."""
        if not queued:
            return []
        async with self.db.transaction() as db:
            rows = await db.fetchall(
                f"SELECT j.id, j.slot_at FROM jobs j WHERE j.owner = ? "  # noqa: S608
                f"AND j.state = 'reserved' AND {_startable('j')} "
                "ORDER BY j.id",
                (worker, max_per_user),
            )
            candidates = set(queued)
            surplus = [int(row["id"]) for row in rows[keep:]
                       if int(row["id"]) in candidates and row["slot_at"] is None]
            if not surplus:
                return []
            marks = ",".join("?" * len(surplus))
            await db.execute(
                f"UPDATE jobs SET owner = NULL WHERE owner = ? AND state = 'reserved' "  # noqa: S608
                f"AND slot_at IS NULL AND id IN ({marks})",
                (worker, *surplus),
            )
            handed = await db.fetchall(
                f"SELECT id FROM jobs WHERE owner IS NULL AND id IN ({marks})",  # noqa: S608
                surplus,
            )
        return sorted(int(row["id"]) for row in handed)

    async def claim_job(self, worker: str, job_id: int) -> Job | None:
        """Take one job if nobody works it (a job just confirmed here); None if another
        process already does."""
        async with self.db.transaction() as db:
            rows = await db.fetchall(
                f"SELECT id FROM jobs WHERE id = ? AND {_OWED} "  # noqa: S608
                f"AND (owner IS NULL OR owner = ? OR owner NOT IN ({self._live()}))"
                f"{self.db.skip_locked}",
                (job_id, worker),
            )
            taken = await _take(db, worker, [int(row["id"]) for row in rows])
        return taken[0] if taken else None

    async def held_jobs(self, worker: str) -> set[int]:
        rows = await self.db.fetchall(
            f"SELECT id FROM jobs WHERE owner = ? AND {_OWED}",  # noqa: S608
            (worker,),
        )
        return {int(row["id"]) for row in rows}

    async def leave_fleet(self, worker: str) -> int:
        """Hand every job back at once (a clean stop): the lease ends now, so other processes
        claim the jobs now rather than after the lease, the started ones shared out over them
        as a dead worker's are (``claim_jobs``). Returns how many were handed back. The records
        of workers gone for a day go too."""
        now = self.db.now_sql
        async with self.db.transaction() as db:
            await db.execute(
                f"UPDATE workers SET lease_until = {now} WHERE id = ?", (worker,)  # noqa: S608
            )
            await db.execute(
                f"DELETE FROM workers WHERE lease_until < {now} - ?", (WORKERS_KEPT,)  # noqa: S608
            )
            row = await db.fetchone(
                f"SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND {_OWED}",  # noqa: S608
                (worker,),
            )
        try:
            await self.db.notify(LEFT_CHANNEL, worker)
        except DatabaseUnavailable:
            log.info("could not tell the fleet we left: our jobs are claimed at its next round")
        return 0 if row is None else int(row["n"])

    async def listen_for_leavers(self, heard: Callable[[], None]) -> None:
        """``heard()`` whenever a process of the fleet stops cleanly (``leave_fleet``)."""
        await self.db.listen(LEFT_CHANNEL, lambda payload: heard())

    async def listen_for_pokes(self, poke: Callable[[int], None]) -> None:
        """``poke(job_id)`` whenever any process asks the job's holder to look at it now; and,
        after a time this process could not listen (its connection to the database lost),
        for each job of ours poked meanwhile."""

        def heard(payload: str) -> None:
            if payload.isdigit():
                poke(int(payload))

        async def missed(seconds: float) -> None:
            if self.worker_id is None:
                return
            rows = await self.db.fetchall(
                f"SELECT id FROM jobs WHERE owner = ? AND {_OWED} "  # noqa: S608
                f"AND poked_at >= {self.db.now_sql} - ? ORDER BY id",
                (self.worker_id, seconds),
            )
            if rows:
                log.info("%d jobs of ours were poked while we could not listen", len(rows))
            for row in rows:
                poke(int(row["id"]))

        await self.db.listen(POKE_CHANNEL, heard, missed=missed)

    async def poke_holder(self, job_id: int) -> None:
        """Ask whichever process holds the job to look at it now. Written on the job as well
        as notified: a holder that was not listening reads it when it listens again."""
        async with self.db.transaction() as db:
            await db.execute(
                f"UPDATE jobs SET poked_at = {self.db.now_sql} WHERE id = ?",  # noqa: S608
                (job_id,),
            )
        await self.db.notify(POKE_CHANNEL, str(job_id))

    async def poke_by_tokens(self, tokens: list[str]) -> list[int]:
        """``poke_holder`` for the job of each provider callback token, all written in one
        transaction before any is notified: the callbacks kept through an outage are safe
        on their jobs at the database's first answer. The ids of the jobs; a token that
        names no job is ignored."""
        if not tokens:
            return []
        woken: list[int] = []
        async with self.db.transaction() as db:
            for start in range(0, len(tokens), TOKENS_PER_STATEMENT):
                chunk = tokens[start:start + TOKENS_PER_STATEMENT]
                marks = ",".join("?" * len(chunk))
                await db.execute(
                    f"UPDATE jobs SET poked_at = {self.db.now_sql} "  # noqa: S608
                    f"WHERE callback_token IN ({marks})",
                    chunk,
                )
                rows = await db.fetchall(
                    f"SELECT id FROM jobs WHERE callback_token IN ({marks})",  # noqa: S608
                    chunk,
                )
                woken.extend(int(row["id"]) for row in rows)
        if woken:
            await self.db.notify_many(POKE_CHANNEL, [str(job_id) for job_id in woken])
        return woken

    async def take_slot(
        self, job_id: int, *, max_active: int, max_per_user: int, worker: str | None = None
    ) -> bool | None:
        """Grant the waiting job one of the fleet's slots: at most ``max_active`` jobs started
        across every process, ``max_per_user`` per member, first come first served (no older
        job of a member with room still waits). False: not now; None: it waits no more (it
        ended, or ``worker`` does not hold it: handed back or taken over)."""
        async with self.db.transaction() as db:
            await db.lock_guild(FLEET_LOCK)
            row = await db.fetchone(
                "SELECT state, user_id, slot_at, owner FROM jobs WHERE id = ?", (job_id,)
            )
            if row is None or row["state"] != "reserved":
                return None
            if worker is not None and row["owner"] != worker:
                return None
            if row["slot_at"] is not None:
                return True  # granted before (a restart, a takeover)
            active = await db.fetchone(
                f"SELECT COUNT(*) AS n, "  # noqa: S608
                f"COALESCE(SUM(CASE WHEN user_id = ? THEN 1 ELSE 0 END), 0) AS mine "
                f"FROM jobs j WHERE {_in_slot('j')}",
                (row["user_id"],),
            )
            assert active is not None
            if int(active["n"]) >= max_active or int(active["mine"]) >= max_per_user:
                return False
            older = await db.fetchone(
                f"SELECT j.id FROM jobs j WHERE j.state = 'reserved' "  # noqa: S608
                f"AND j.slot_at IS NULL AND j.id < ? "
                f"AND (j.owner IS NULL OR j.owner IN ({self._live()})) "
                f"AND (SELECT COUNT(*) FROM jobs k WHERE k.user_id = j.user_id AND "
                f"{_in_slot('k')}) < ? "
                "LIMIT 1",
                (job_id, max_per_user),
            )
            if older is not None:
                return False  # an earlier confirm goes first (its process was told)
            await db.execute(
                f"UPDATE jobs SET slot_at = {self.db.now_sql} WHERE id = ?",  # noqa: S608
                (job_id,),
            )
        return True

    async def listen_for_slots(self, pump: Callable[[], None]) -> None:
        await self.db.listen(SLOT_CHANNEL, lambda payload: pump())

    async def slot_freed(self) -> None:
        await self.db.notify(SLOT_CHANNEL, "")

    async def live_workers(self) -> int:
        row = await self.db.fetchone(
            f"SELECT COUNT(*) AS n FROM workers WHERE lease_until > {self.db.now_sql}"  # noqa: S608
        )
        return 0 if row is None else int(row["n"])


async def _take(db: Connection, worker: str, job_ids: list[int]) -> list[Job]:
    if not job_ids:
        return []
    marks = ",".join("?" * len(job_ids))
    await db.execute(
        f"UPDATE jobs SET owner = ? WHERE id IN ({marks})", (worker, *job_ids)  # noqa: S608
    )
    rows = await db.fetchall(f"{JOB_SELECT} WHERE j.id IN ({marks}) ORDER BY j.id", job_ids)
    return [job_from_row(row) for row in rows]
