"""The project's exception types. Each names the message a member may see by its catalogue key
and values (``bot.i18n``), so the cogs show it in the member's language; ``str(error)`` is the
English text, for logs."""

from __future__ import annotations

from bot.i18n import Msg, Value


class AnimateError(Exception):
    """Base class: ``message`` is safe to show to a Discord user (``message.render(locale)``).

    Raised with a catalogue key and its values. Errors meant for operators only (settings,
    internal state) may carry a plain sentence instead: a key no catalogue knows is shown as is.
    """

    def __init__(self, key: str, /, **values: Value) -> None:
        super().__init__(key)
        self.message = Msg(key, values)

    def __str__(self) -> str:
        return str(self.message)  # English, moments as plain dates


class ConfigError(AnimateError):
    """A setting is missing or malformed."""


class InvalidRequest(AnimateError):
    """The user's /animate input cannot be quoted (bad option combination, image, prompt)."""


class LimitExceeded(AnimateError):
    """The price would take the user over a spending limit."""


class QuoteUnavailable(AnimateError):
    """The quote is unknown, expired, cancelled or already confirmed."""


class NotQuoteOwner(AnimateError):
    """Someone other than the quote's author pressed one of its buttons."""


class StateConflict(AnimateError):
    """A job is not in the state an operation expects (it was moved on by someone else)."""


class DatabaseUnavailable(AnimateError):
    """The database cannot be reached (PostgreSQL restarting or the network down); the pool
    reconnects by itself once the server is back.

    For a write the outcome is unknown: a connection lost during COMMIT leaves a transaction
    that may have committed. Whoever wrote reads the row back and carries on from its real
    state (never "someone else moved it on"); nothing is assumed written or unwritten."""

    def __init__(self, key: str = "error.database_unavailable", /, **values: Value) -> None:
        super().__init__(key, **values)
class DuplicateProviderJob(AnimateError):
    """The provider answered a create with a job id it had already given another job."""


class PictureUnavailable(AnimateError):
    """A quote's picture can no longer be read from Discord (deleted, or its link expired)."""
