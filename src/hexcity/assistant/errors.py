"""Errors of the assistant, each with a stable code and HTTP status."""

from __future__ import annotations

from hexcity.kernel import HexcityError, InvalidInput, NotFound


class AssistantError(HexcityError):
    code = "AssistantError"
    status = 500


class InvalidQuestion(InvalidInput):
    """Empty, too long, or otherwise unusable question."""

    code = "InvalidQuestion"


class ArticleNotFound(NotFound):
    code = "ArticleNotFound"


class CorpusInvalid(AssistantError):
    """A shipped or published help article cannot be parsed."""

    code = "CorpusInvalid"


class RecordNotFound(NotFound):
    """No such record on the asker's account (another customer's record looks the same)."""

    code = "RecordNotFound"


class NotPermitted(AssistantError):
    """The caller lacks a permission the tool needs."""

    code = "NotPermitted"
    status = 403


class ConfirmationRequired(AssistantError):
    """A money-moving action was called without a valid confirmation."""

    code = "ConfirmationRequired"
    status = 409
