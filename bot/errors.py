"""The project's exception types. Each carries the message a user may see."""

from __future__ import annotations


class AnimateError(Exception):
    """Base class: ``str(error)`` is safe to show to a Discord user."""


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
