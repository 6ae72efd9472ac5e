"""A job's states and the moves between them, written down once.

The ledger refuses a write that moves a job along an edge not listed here (``check_move``),
the job runner's steps name their states with these constants, and a test holds ``STATES``
against the database's CHECK constraint on both engines. ARCHITECTURE.md draws the same graph.

Every state is written *before* the side effect it allows: ``submitting`` before the create is
sent, ``succeeded`` (with ``posting_at``) before the video is posted. Leaving ``reserved`` for
``submitting`` is the only move that may cost money at the provider; ``delivered``, ``failed``
and ``expired`` are written in the same transaction as the ledger row that settles or refunds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

AWAITING_APPROVAL: Final = "awaiting_approval"
RESERVED: Final = "reserved"
SUBMITTING: Final = "submitting"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
EXPIRED: Final = "expired"

# What a job runner works, in order; AWAITING_APPROVAL is reserved too, but no runner works it
# until someone decides.
UNFINISHED_STATES: Final = (RESERVED, SUBMITTING, RUNNING, SUCCEEDED)
# The money has moved (settled or refunded); only telling the member may remain.
FINAL_STATES: Final = (DELIVERED, FAILED, EXPIRED)
STATES: Final = (AWAITING_APPROVAL, *UNFINISHED_STATES, *FINAL_STATES)


@dataclass(frozen=True, slots=True)
class Move:
    """One allowed move: ``source`` is None for the job's creation."""

    source: str | None
    target: str
    step: str  # who makes it: see STEPS
    when: str


# The steps that move jobs, and where they live.
STEPS: Final = {
    "confirm": "bot.ledger.money.Money.confirm_quote (the member's Confirm)",
    "approval": "bot.ledger.approvals (a moderator, the member's cancel, the approval clock)",
    "submit": "bot.jobs.steps.Steps.submit",
    "poll": "bot.jobs.steps.Steps.poll",
    "deliver": "bot.jobs.delivery.Delivery.deliver",
    "cancel": "bot.jobs.runner.JobRunner.cancel_waiting (the member's Cancel)",
    "resume": "bot.jobs.runner.JobRunner.resume (after a restart or a takeover)",
}

MOVES: Final = (
    Move(None, RESERVED, "confirm", "the price is reserved"),
    Move(None, AWAITING_APPROVAL, "confirm", "reserved, at or above the server's approval price"),
    Move(AWAITING_APPROVAL, RESERVED, "approval", "a moderator approves"),
    Move(AWAITING_APPROVAL, FAILED, "approval", "denied or cancelled: refunded"),
    Move(AWAITING_APPROVAL, EXPIRED, "approval", "nobody decided in time: refunded"),
    Move(RESERVED, SUBMITTING, "submit", "the create leaves the rate limiter"),
    Move(RESERVED, FAILED, "submit", "picture gone or create refused before sending: refunded"),
    Move(RESERVED, FAILED, "cancel", "the member cancels while it waits: refunded"),
    Move(SUBMITTING, RUNNING, "submit", "the provider accepted the create"),
    Move(SUBMITTING, FAILED, "submit", "the create failed, or could not be recorded: refunded"),
    Move(SUBMITTING, FAILED, "resume", "a create cut off by a restart: refunded, never resent"),
    Move(RUNNING, SUCCEEDED, "poll", "the provider has the video"),
    Move(RUNNING, FAILED, "poll", "the provider failed it, or gave no video: refunded"),
    Move(RUNNING, EXPIRED, "poll", "past its deadline: refunded"),
    Move(SUCCEEDED, DELIVERED, "deliver", "posted, then settled at the quote"),
    Move(SUCCEEDED, FAILED, "deliver", "the file is gone, or could not be posted: refunded"),
)

_EDGES: Final = frozenset((move.source, move.target) for move in MOVES)


def allowed(source: str | None, target: str) -> bool:
    return (source, target) in _EDGES


def check_move(sources: Iterable[str], target: str) -> tuple[str, ...]:
    """``sources`` as a tuple, if a job may move from each of them to ``target``; ValueError
    (a bug in the caller, never the job's fault) otherwise."""
    sources = tuple(sources)
    wrong = [source for source in sources if not allowed(source, target)]
    if wrong or not sources:
        raise ValueError(f"no move {'/'.join(wrong) or '(nothing)'} -> {target}")
    return sources
