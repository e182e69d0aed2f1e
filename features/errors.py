"""The error family of the whole project (``features``, ``synthetic``, ``riskmodel``).

Every error a user can fix by changing what they asked for is a :class:`UserError`; its class
carries the exit code the ``riskmodel`` command ends with, and ``riskmodel.cli`` reads that code in
one place. Anything that is not a ``UserError`` is a bug in riskmodel: the command line prints one
line that says so and writes the traceback to its log file.

The family lives here, in the bottom layer, because the data hub raises these errors too and
imports nothing above it. Families of their own (``riskmodel.errors``) derive from these.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or options. Exit code 2: change what you asked for."""

    exit_code = 2


class OutputError(UserError):
    """An output path that must not or cannot be written: it is an input of the same run, another
    output of the same run, has the wrong suffix, lies on a full or read-only disk, or another
    process is writing it right now."""
