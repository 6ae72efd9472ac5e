"""Fleet membership: who holds the lease on this process's jobs, and its share of the fleet.

Several processes may share one database: each works only the jobs it holds a lease on
(``bot.ledger.leases``) and takes over those of a process that died. ``Fleet`` owns this
process's worker id and its lease (when it was last renewed, the task that keeps it) and
whether the fleet has counted it yet. It touches only the ledger's lease records; what to do
with the jobs each round (take over, forget those taken from us) is the runner's, passed in as
callbacks. With SQLite the lease is simply its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from bot.jobs.context import Context
from bot.ledger.leases import process_namespace, this_host
from bot.tasks import wait_at_most

log = logging.getLogger(__name__)

# The workers of this process (a test or a benchmark may run several runners in one process).
_OUR_WORKERS: set[str] = set()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class Fleet:
    def __init__(
        self,
        ctx: Context,
        *,
        lease_seconds: float,
        detail: str,
        on_fleet_size: Callable[[int, float], None] | None,
        each_round: Callable[[], Awaitable[None]],
        keep_only: Callable[[set[int]], None],
        on_lease: Callable[[float], None] | None = None,
    ) -> None:
        """``each_round``: take over what is owed (every third of a lease); ``keep_only``: the
        jobs still ours after our lease had run out (forget the others); ``on_lease(until)``:
        after each renewal, the event-loop time until which the lease is surely ours
        (``holds_lease``): what reaches outside stops then unless renewed meanwhile."""
        self._ctx = ctx
        self._on_fleet_size = on_fleet_size
        self._on_lease = on_lease
        self._each_round = each_round
        self._round_now = asyncio.Event()  # another process stopped: take over at once
        self._keep_only = keep_only
        self._counted_fleet = False
        self._processes = 1  # the fleet's size when last counted
        self._quiet_until = -math.inf  # loop time a newcomer's quiet ends
        # This process in the fleet: a random id per start (readable by operators), never its
        # host name and pid, which other machines and containers may share.
        self.host = this_host()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        _OUR_WORKERS.add(self.worker_id)
        self._detail = detail
        self.lease_seconds = lease_seconds
        self._lease_renewed = -math.inf  # loop time of the last renewal that succeeded
        self._rejoined = -math.inf  # loop time we joined again after our lease ran out
        self.lease_task: asyncio.Task[None] | None = None

    @property
    def joined(self) -> bool:
        """Started as a member of the fleet (a runner never started works alone)."""
        return self.lease_task is not None

    @property
    def holds_lease(self) -> bool:
        """Our lease was renewed recently enough that nobody can have taken our jobs: checked
        before every step that reaches outside (a create, a post)."""
        if self.lease_task is None:
            return True  # not in a fleet (a runner that was never started)
        age = asyncio.get_running_loop().time() - self._lease_renewed
        return age < self.lease_seconds * 2 / 3  # as ``on_lease`` is told

    @property
    def settled(self) -> bool:
        """Whether to take over the jobs of processes whose lease ran out. Not while our own
        lease is in doubt, nor for a lease after it had run out: the database was away (or we
        stalled), and the others' leases most likely ran out for the same reason; they come
        back within a round and keep their jobs, rather than the first process back taking
        the whole fleet's work at its share of the provider's rate. The jobs of a process that
        really died are taken over a lease later."""
        if not self.holds_lease:
            return False
        return asyncio.get_running_loop().time() - self._rejoined >= self.lease_seconds

    async def enter(self) -> None:
        """Take the place of a predecessor on this machine that died, and join."""
        self._ctx.ledger.worker_id = self.worker_id
        await self._end_dead_leases_here()
        await self._join()

    def keep(self) -> None:
        """Keep the lease from now on (its own task)."""
        self.lease_task = asyncio.get_running_loop().create_task(
            self._keep_lease(), name="job-lease"
        )

    async def stop(self) -> None:
        if self.lease_task is not None:
            self.lease_task.cancel()
            await asyncio.gather(self.lease_task, return_exceptions=True)

    async def leave(self) -> None:
        """Nothing of ours runs any more: the other processes may take every job now."""
        if self.lease_task is None:
            return
        try:
            handed = await self._ctx.ledger.leave_fleet(self.worker_id)
        except Exception:
            log.exception("could not hand the jobs back; others take them over when the "
                          "lease runs out")
        else:
            log.info("handed %d unfinished jobs back to the fleet", handed)

    async def _join(self) -> None:
        await self._ctx.ledger.join_fleet(
            self.worker_id, self.lease_seconds, host=self.host, pid=os.getpid(),
            detail=self._detail,
        )
        self._renewed()

    def _renewed(self) -> None:
        self._lease_renewed = asyncio.get_running_loop().time()
        if self._on_lease is not None:
            self._on_lease(self._lease_renewed + self.lease_seconds * 2 / 3)

    async def _end_dead_leases_here(self) -> None:
        """A process restarted in the same pid namespace (same machine, same boot: systemd
        restarting it) takes its predecessor's jobs at once rather than after its lease: a
        lease taken there by a process that no longer runs is over (one with our own pid is
        gone too). Anywhere else a lease ends only by running out: processes that share a host
        name but not a pid namespace (containers with a fixed hostname, host networking) cannot
        judge each other's pids. See ``bot.ledger.leases.process_namespace``."""
        if process_namespace() is None:
            return
        for worker, pid in await self._ctx.ledger.live_workers_on(self.host):
            if worker in _OUR_WORKERS:
                continue
            if pid == os.getpid() or not _running(pid):
                log.info("the lease of %s ended with its process", worker)
                await self._ctx.ledger.end_lease(worker)

    async def _keep_lease(self) -> None:
        """Renew the lease and count the fleet while the process lives (in their own task: a
        long takeover round must let neither the lease run out nor the count go stale), and
        take over the jobs of processes whose lease ran out (they died) or that handed theirs
        back (they stopped)."""
        renewing = asyncio.get_running_loop().create_task(self._renew_forever())
        try:
            while True:
                await wait_at_most(self._round_now.wait(), self.lease_seconds / 3)
                self._round_now.clear()
                try:
                    await self._each_round()
                except Exception:
                    log.exception("could not take over jobs; trying again")
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    def round_now(self) -> None:
        """A process left the fleet (a clean stop): take its jobs over now, not at the next
        round."""
        self._round_now.set()

    async def _renew_forever(self) -> None:
        """Every third of a lease: renew, then count the fleet (``share``). Every process
        counts a newcomer (or one back after its lease ran out) within a third of a lease
        and a statement or two, which is what a newcomer's quiet time counts on."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self._renew()
            except Exception:
                log.exception("could not renew the job lease; trying again")
            try:
                await self.share()
            except Exception:
                log.exception("could not count the fleet; trying again")

    async def share(self) -> None:
        """Fleet-wide caps that are shared out (the provider's rate) follow the fleet's size:
        ``on_fleet_size(processes, quiet)``, where ``quiet`` is how long to send nothing.

        A process joining a running fleet is quiet for one round of the others (a third of a
        lease, and a margin): until each has counted it, their shares add up to the whole
        MAX_PROVIDER_RPS, and anything the newcomer sent would go over it."""
        if self._on_fleet_size is None:
            return
        loop = asyncio.get_running_loop()
        if self.joined and not self.holds_lease:
            # Our lease may run out (the database away, a stall): the others will count us
            # out and take our share while we still send. Quiet until we are counted again
            # (asked again every round: lifted as soon as the lease is renewed in time).
            self._on_fleet_size(self._processes, self.lease_seconds / 3 + 2)
            return
        processes = self._processes = max(1, await self._ctx.ledger.live_workers())
        if not self._counted_fleet and processes > 1:
            # New to the others (or counted out by them): quiet for one round of theirs.
            self._quiet_until = loop.time() + self.lease_seconds / 3 + 2
        self._counted_fleet = True
        self._on_fleet_size(processes, max(0.0, self._quiet_until - loop.time()))

    async def _renew(self) -> None:
        if await self._ctx.ledger.renew_lease(self.worker_id, self.lease_seconds):
            self._renewed()
            return
        # Our lease ran out (database unreachable, process stalled): other processes may have
        # taken some of our jobs. Keep only those still ours.
        log.warning("job lease had run out; taking back only the jobs nobody took over")
        # Counted out meanwhile, the others' shares add up to the whole MAX_PROVIDER_RPS:
        # quiet for one round of theirs, as a newcomer is. Not when none of them counted the
        # fleet since our lease ran out (the database was away for all of us alike).
        counted_out = await self._ctx.ledger.counted_out(self.worker_id, self.lease_seconds)
        self._counted_fleet = not counted_out
        if counted_out and self._on_fleet_size is not None:
            # Quiet before joining again lets the provider's line go (``on_lease``).
            self._quiet_until = asyncio.get_running_loop().time() + self.lease_seconds / 3 + 2
            self._on_fleet_size(self._processes, self.lease_seconds / 3 + 2)
        await self._join()
        self._rejoined = asyncio.get_running_loop().time()
        self._keep_only(await self._ctx.ledger.held_jobs(self.worker_id))
