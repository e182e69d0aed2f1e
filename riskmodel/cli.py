"""The ``riskmodel`` command. Each command parses options, calls one library function and prints.

User errors (bad parameters, invalid files) print a one-line message to stderr and exit with a
non-zero code; a traceback means a bug in riskmodel, not in the input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from riskmodel.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="技术流 credit risk scoring for sci-tech SMEs.")


def _echo_json(obj) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# ---- generate (data/synthetic) ---------------------------------------------------------------


# ---- features, catalog (features/) -----------------------------------------------------------


# ---- train, compare, promote (riskmodel/models, evaluation, tracking) -------------------------


# ---- score, explain (riskmodel/scoring) --------------------------------------------------------


# ---- report (riskmodel/report) ---------------------------------------------------------------


# ---- monitor, stress, npl-tolerance --------------------------------------------------------------


# ---- federated-train ------------------------------------------------------------------------------


# ---- demo --------------------------------------------------------------------------------------


def main() -> None:
    """Entry point: run the Typer app, turning user errors into one-line messages."""
    from features.tables import TableError

    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (UserError,) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except TableError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            typer.echo("aborted", err=True)
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
