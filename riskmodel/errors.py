"""riskmodel's own user errors. The family's root, :class:`~features.errors.UserError`, lives in the
bottom layer (``features.errors``) and is imported here for riskmodel's modules; ``riskmodel.cli``
prints any of them as one line and exits with its ``exit_code``, no traceback."""

from __future__ import annotations

from features.errors import OutputError, UserError

__all__ = ["OutputError", "ScoringError", "UserError"]


class ScoringError(UserError):
    """The batch cannot be scored at all (missing columns, unreadable file, unknown model)."""

    exit_code = 1
