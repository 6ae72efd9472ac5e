"""Job lifecycle: submit to ShortAPI, follow it from one scheduler loop, deliver or refund.

A job moves along the states and moves of ``bot.lifecycle`` (reserved -> submitting ->
running -> succeeded -> delivered, or refunded as failed / expired), each state written
*before* the side effect it allows. The parts, each the one owner of its state:

- ``fleet``     who holds the lease on this process's jobs; its share of fleet-wide caps
- ``line``      who waits for a slot (and their place), who is active here, the fleet's slots
- ``schedule``  when each running job is next polled (one loop, most overdue first)
- ``steps``     how a job moves to the provider and back: submit, poll, fail (refund)
- ``delivery``  post the video (or its link) once, then settle it at the quote
- ``telling``   how a member is told: progress, place in line, the outcome, once
- ``runner``    ``JobRunner`` puts them together; ``resume`` is the one place that decides
                what happens to a job after a restart or a takeover
- ``context``   what the parts share (ledger, clock, tasks) and the ports they call out to

Several processes may share one database: each works only the jobs it holds a lease on
(``bot.ledger.leases``), and takes over the jobs of a process that died, through ``resume``
as after a restart. The runner does not know the engine: with SQLite its lease is its own.
"""

from bot.jobs.context import Notifier, ProviderAPI
from bot.jobs.runner import JobRunner

__all__ = ["JobRunner", "Notifier", "ProviderAPI"]
