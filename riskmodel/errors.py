"""riskmodel's own user errors. The root of the family, :class:`features.errors.UserError` (exit code
2), lives in the bottom layer; it is imported here so riskmodel modules can write
``from riskmodel.errors import UserError``. The CLI prints a user error's message on one line and
exits with its ``exit_code``, no traceback."""

from __future__ import annotations

from features.errors import UserError

__all__ = ["ScoringError", "StoreError", "StoreUnavailable", "UserError"]


class ScoringError(UserError):
    """The batch cannot be scored at all (missing columns, unreadable file, unknown model)."""

    exit_code = 1


class StoreError(UserError):
    """The MLflow tracking store cannot be used: the SQLite file is not a database or is damaged, or
    the tracking server refuses the request. The message names the store and what to do."""


class StoreUnavailable(StoreError):
    """The tracking server does not answer (connection refused, timeout). Exit code 75 (sysexits'
    EX_TEMPFAIL): nothing is wrong with the input; a scheduler may try again later."""

    exit_code = 75
