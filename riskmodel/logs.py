"""Logging for one run of the ``riskmodel`` command: our own lines on the terminal, everything in a log file.

:func:`setup_cli` is called once per command (the Typer app's callback) and is the only place that
configures logging for the CLI:

* Terminal (stderr): warnings and errors from riskmodel's own loggers (``riskmodel.*``,
  ``features.*``), such as the public demo id-key warning. Lines of other libraries (MLflow, its
  database migrations, urllib3, ...) and Python warnings go to the terminal only with
  ``--verbose``, which also shows INFO lines.
* Log file: one file per run with everything at INFO and above from riskmodel, MLflow and alembic
  and WARNING and above from every other library, Python warnings included. The directory is the
  first usable of ``RISKMODEL_LOG_DIR``, ``$XDG_STATE_HOME/riskmodel/logs``,
  ``~/.local/state/riskmodel/logs``, else ``<temp dir>/riskmodel-logs-<uid>``; the newest
  :data:`KEEP_LOGS` files are kept.

MLflow installs its own stderr handler when it is imported unless ``MLFLOW_CONFIGURE_LOGGING`` is
false; this module sets that variable (and undoes the handler when mlflow was imported already).
MLflow's ``eprint`` messages ("Successfully registered model ...") are sent to its logger by
``riskmodel.tracking``. Nothing here imports mlflow.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

LOG_DIR_ENV = "RISKMODEL_LOG_DIR"
KEEP_LOGS = 20
OUR_LOGGERS = ("riskmodel", "features")
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers whose INFO lines belong in the file; every other library logs WARNING and above there
# (SQLAlchemy's engine logs each SQL statement at INFO: it must stay at WARNING).
_INFO_LOGGERS = (*OUR_LOGGERS, "mlflow", "alembic")
# Loggers MLflow gives a stderr handler of their own (propagate=False) when it configures logging.
_MLFLOW_OWNED = ("mlflow", "alembic", "sqlalchemy.engine", "huey")
_TAG = "_riskmodel_cli_handler"

log = logging.getLogger(__name__)


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler writing to ``sys.stderr`` as it is at each record (so a test's capture of
    stderr, or a redirect, sees the lines)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


class _ConsoleFilter(logging.Filter):
    """Without --verbose: only riskmodel's own loggers reach the terminal."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        return record.name.split(".", 1)[0] in OUR_LOGGERS


def _usable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)


def log_dir_candidates() -> list[Path]:
    """Where log files may go, in order of preference (see the module docstring)."""
    out = []
    if os.environ.get(LOG_DIR_ENV, "").strip():
        out.append(Path(os.environ[LOG_DIR_ENV].strip()).expanduser())
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    if state and os.path.isabs(state):  # the XDG spec says to ignore a relative path
        out.append(Path(state) / "riskmodel" / "logs")
    out.append(Path.home() / ".local" / "state" / "riskmodel" / "logs")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(Path(tempfile.gettempdir()) / f"riskmodel-logs-{uid}")
    return out


def log_dir() -> Path | None:
    """The first usable log directory (created if missing), or None when none is writable."""
    candidates = log_dir_candidates()
    for d in candidates:
        if _usable(d) and (d != candidates[-1] or _own(d)):
            return d
    return None


def _own(directory: Path) -> bool:
    """The shared temp directory's subfolder must be ours (another user could have created it)."""
    return not hasattr(os, "getuid") or directory.stat().st_uid == os.getuid()


def _prune(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` run logs in ``directory`` (other files are left alone)."""
    files = []
    for p in directory.glob("riskmodel-*.log"):
        try:
            files.append((p.stat().st_mtime, p.name, p))
        except OSError:  # removed by a concurrent run meanwhile
            continue
    files.sort(reverse=True)
    for _, _, p in files[keep:]:
        try:
            p.unlink()
        except OSError:
            pass


def _release_mlflow_loggers() -> None:
    """Give MLflow's loggers back to the root logger (undo the stderr handler MLflow installs at import)."""
    for name in _MLFLOW_OWNED:
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True


def setup_cli(command: str = "riskmodel", verbose: bool = False, keep: int = KEEP_LOGS) -> Path | None:
    """Configure logging for one CLI run; returns the run's log file (None if no directory is writable).

    Idempotent within a process: handlers from an earlier call are closed and replaced."""
    os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"  # read when mlflow is imported (later, lazily)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if "mlflow" in sys.modules:  # imported already (a caller in the same process): undo its handlers
        _release_mlflow_loggers()
    close_cli()
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    for name in _INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # 7 "setup plugin" lines per store opened
    logging.captureWarnings(True)  # Python warnings become records of the "py.warnings" logger

    console = _StderrHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    console.addFilter(_ConsoleFilter(verbose))
    setattr(console, _TAG, True)
    root.addHandler(console)

    path = None
    directory = log_dir()
    if directory is not None:
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in command)[:40] or "run"
        stem = f"riskmodel-{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{os.getpid()}"
        path, n = directory / f"{stem}.log", 1
        while path.exists():  # a second run in the same process and second (in-process callers)
            n += 1
            path = directory / f"{stem}-{n}.log"
        try:
            fh = logging.FileHandler(path, encoding="utf-8")
        except OSError:
            path = None
        else:
            fh.setLevel(logging.INFO)
            fh.setFormatter(logging.Formatter(FILE_FORMAT))
            setattr(fh, _TAG, True)
            root.addHandler(fh)
            _prune(directory, keep)
    wanted = os.environ.get(LOG_DIR_ENV, "").strip()
    if wanted and (path is None or path.parent != Path(wanted).expanduser()):
        log.warning("%s=%s is not a writable directory; the log file is %s", LOG_DIR_ENV, wanted, path or "not written")
    log.info("riskmodel %s: %s (log file %s)", command, " ".join(sys.argv[1:]), path)
    return path


def file_only(level: int, message: str, exc_info=None) -> None:
    """Record ``message`` in this run's log file only (the terminal already shows it, e.g. an error line)."""
    record = logging.LogRecord("riskmodel.cli", level, __file__, 0, "%s", (message,), exc_info)
    for h in logging.getLogger().handlers:
        if getattr(h, _TAG, False) and isinstance(h, logging.FileHandler):
            h.handle(record)


def close_cli() -> None:
    """Remove and close the handlers :func:`setup_cli` installed (the end of a CLI run in a process that goes on)."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _TAG, False)]:
        root.removeHandler(h)
        h.close()


def current_log_file() -> Path | None:
    """The log file of this CLI run (set up by :func:`setup_cli`), or None."""
    for h in logging.getLogger().handlers:
        if getattr(h, _TAG, False) and isinstance(h, logging.FileHandler):
            return Path(h.baseFilename)
    return None
