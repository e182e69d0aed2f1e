"""User-facing errors: the CLI prints their message on one line and exits with their code, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or options; ``exit_code`` 2 means 'change what you asked for'."""

    exit_code = 2


class ScoringError(UserError):
    """The batch cannot be scored at all (missing columns, unreadable file, unknown model)."""

    exit_code = 1
