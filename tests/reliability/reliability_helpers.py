"""Helpers shared by the reliability tests (imported as a plain module, like tests/code/feature_fixtures)."""

from __future__ import annotations

import sys


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``riskmodel ARGS`` in-process through riskmodel.cli.main; return (exit code, stdout, stderr).

    Any exception other than SystemExit escapes: that is a traceback the user would see."""
    from riskmodel.cli import main

    old = sys.argv
    sys.argv = ["riskmodel", *[str(a) for a in args]]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err
