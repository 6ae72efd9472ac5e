"""Rows as the rest of the bot sees them: quotes and jobs (frozen snapshots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from bot.lifecycle import AWAITING_APPROVAL, FINAL_STATES, UNFINISHED_STATES
from bot.pricing import VideoOptions
from bot.storage.base import Row

# A job's states live in bot.lifecycle with the moves between them.
__all__ = [
    "AWAITING_APPROVAL", "FINAL_STATES", "JOB_SELECT", "UNFINISHED_STATES", "Job", "PictureRef",
    "Quote", "job_from_row",
]


@dataclass(frozen=True, slots=True)
class PictureRef:
    """Where a quote's picture lives in Discord. Attachment URLs expire (about a day); reading
    this message again gives a fresh one. ``key`` is ``attachment:<id>[/<filename>]`` or
    ``embed:<index>``."""

    channel_id: int
    message_id: int
    key: str


@dataclass(frozen=True, slots=True)
class Quote:
    id: str
    guild_id: int
    channel_id: int
    user_id: int
    message_id: int | None
    in_thread: bool
    prompt: str
    image_url: str
    options: VideoOptions
    price_mills: int
    upload_limit: int
    state: str
    created_at: float
    expires_at: float
    dry_run: bool = False
    picture: PictureRef | None = None
    # When the prompt and picture link were erased (the member was forgotten, or
    # PROMPT_RETENTION_DAYS passed): ``prompt`` and ``image_url`` are empty from then on.
    erased_at: float | None = None

    @classmethod
    def from_row(cls, row: Row) -> Quote:
        return cls(
            id=row["id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            user_id=row["user_id"],
            message_id=row["message_id"],
            in_thread=bool(row["in_thread"]),
            prompt=row["prompt"],
            image_url=row["image_url"],
            options=VideoOptions(
                resolution=row["resolution"],
                duration=row["duration"],
                aspect_ratio=row["aspect_ratio"],
                audio=bool(row["audio"]),
                multi_shot=bool(row["multi_shot"]),
            ),
            price_mills=row["price_mills"],
            upload_limit=row["upload_limit"],
            state=row["state"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            dry_run=bool(row["dry_run"]),
            picture=None if row["picture_key"] is None else PictureRef(
                row["picture_channel_id"], row["picture_message_id"], row["picture_key"]
            ),
            erased_at=row["erased_at"],
        )


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    quote: Quote
    state: str
    price_mills: int
    provider_job_id: str | None
    provider_amount_mills: int | None  # the operator's cost as the provider stated it
    provider_status: int | None
    video_url: str | None
    thread_id: int | None
    result_message_id: int | None
    error: str | None
    callback_token: str | None = field(repr=False)
    posting_at: float | None
    created_at: float
    submitted_at: float | None
    finished_at: float | None
    deadline_at: float
    # The member's outcome once money has moved: told_at is None until they were told (and
    # the quote card shows it); telling_at marks an attempt that may have posted the message.
    telling_at: float | None = None
    told_at: float | None = None
    outcome: str | None = None  # the failure reason to tell, as stored by ``bot.i18n.dumps``
    # Written before the failure's private follow-up is sent (it cannot be found afterwards).
    followup_at: float | None = None
    # Approval above a price (None when the job never needed one).
    approval_deadline: float | None = None
    approval_message_id: int | None = None  # the card in the approvals channel (0: posting)
    decision: str | None = None  # approved | denied | expired | cancelled
    decided_by: int | None = None
    decided_at: float | None = None
    approval_telling_at: float | None = None
    approval_told_at: float | None = None
    # When a provider callback last asked for the job to be looked at (``Ledger.poke_holder``):
    # a running job with one has most likely finished rendering.
    poked_at: float | None = None

    @property
    def user_id(self) -> int:
        return self.quote.user_id

    @property
    def guild_id(self) -> int:
        return self.quote.guild_id

    @property
    def charged_mills(self) -> int:
        """What the member pays for a delivered job: the quoted price, whatever the provider
        says it charged (the quote is the promise they accepted)."""
        return self.price_mills


JOB_SELECT: Final = """
    SELECT j.id AS job_id, j.state AS job_state, j.price_mills AS job_price, j.provider_job_id,
           j.provider_amount_mills, j.provider_status, j.video_url, j.thread_id,
           j.result_message_id, j.error, j.callback_token, j.posting_at,
           j.created_at AS job_created_at, j.submitted_at,
           j.finished_at, j.deadline_at, j.telling_at, j.told_at, j.outcome, j.followup_at,
           j.approval_deadline, j.approval_message_id, j.decision, j.decided_by, j.decided_at,
           j.approval_telling_at, j.approval_told_at, j.poked_at, q.*
    FROM jobs j JOIN quotes q ON q.id = j.quote_id
"""


def job_from_row(row: Row) -> Job:
    return Job(
        id=row["job_id"],
        quote=Quote.from_row(row),
        state=row["job_state"],
        price_mills=row["job_price"],
        provider_job_id=row["provider_job_id"],
        provider_amount_mills=row["provider_amount_mills"],
        provider_status=row["provider_status"],
        video_url=row["video_url"],
        thread_id=row["thread_id"],
        result_message_id=row["result_message_id"],
        error=row["error"],
        callback_token=row["callback_token"],
        posting_at=row["posting_at"],
        created_at=row["job_created_at"],
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        deadline_at=row["deadline_at"],
        telling_at=row["telling_at"],
        told_at=row["told_at"],
        outcome=row["outcome"],
        followup_at=row["followup_at"],
        approval_deadline=row["approval_deadline"],
        approval_message_id=row["approval_message_id"],
        decision=row["decision"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        approval_telling_at=row["approval_telling_at"],
        approval_told_at=row["approval_told_at"],
        poked_at=row["poked_at"],
    )
