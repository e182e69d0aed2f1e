"""The MLflow tracking store: where it is, how several processes share it, experiments.

- Store: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlruns.db``; resolved at every call,
  never at import. A team points ``MLFLOW_TRACKING_URI`` at an ``mlflow server``.
- Several processes on one SQLite file: SQLite has one writer at a time, and MLflow's transactions
  can fail with "database is locked" when two processes upgrade read locks at once. Every store
  write runs under an advisory file lock next to the database (``mlruns.db.lock``); every
  call is retried with exponential backoff on "database is locked"; the database is switched to
  WAL journal mode, so reads (compare, loading a model) and artifact files need no lock. The first process also migrates a fresh store under the
  lock, so concurrent first runs do not race on schema creation. Fits run outside the lock, so
  concurrent trainings only queue for the short logging calls.
- Messages: MLflow prints a few lines with ``print`` to stderr rather than logging them ("Successfully
  registered model ..."); :func:`configure` sends them to the ``mlflow.eprint`` logger, so they follow
  the logging setup like MLflow's other lines (``riskmodel.logs``: the log file, terminal with --verbose).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils import logging_utils as mlflow_logging_utils
from mlflow.utils.logging_utils import MlflowLoggingStream

from riskmodel.errors import StoreError, StoreUnavailable, UserError

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "riskmodel"
_RETRIES = 12

# --------------------------------------------------------------------------------------------
# Store location, locking and retries
# --------------------------------------------------------------------------------------------


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<absolute cwd>/mlruns.db`` (read at call time)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{(Path.cwd() / 'mlruns.db').resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(raw) if raw and raw != ":memory:" else None


_lock_state = threading.local()
_thread_lock = threading.RLock()
_prepared: set[str] = set()
# Seconds this process spent waiting for / holding the store lock, and lock-error retries (for figures).
lock_stats: dict[str, float] = {"wait_seconds": 0.0, "held_seconds": 0.0, "acquisitions": 0, "retries": 0}


@contextlib.contextmanager
def _store_lock(uri: str | None = None) -> Iterator[None]:
    """Exclusive advisory lock on ``<db>.lock`` for a SQLite store (re-entrant; no-op for servers)."""
    uri = uri or tracking_uri()
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on retries only
        yield
        return
    with _thread_lock:
        depth = getattr(_lock_state, "depth", 0)
        if depth:
            _lock_state.depth = depth + 1
            try:
                yield
            finally:
                _lock_state.depth -= 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(f"{path}.lock", "a+")
        try:
            t0 = time.perf_counter()
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            t1 = time.perf_counter()
            _lock_state.depth = 1
            try:
                yield
            finally:
                _lock_state.depth = 0
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                lock_stats["wait_seconds"] += t1 - t0
                lock_stats["held_seconds"] += time.perf_counter() - t1
                lock_stats["acquisitions"] += 1
        finally:
            fh.close()


def _is_locked_error(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 5:
        text = str(exc).lower()
        if "database is locked" in text or "database table is locked" in text or "database is busy" in text:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


_DAMAGED = ("file is not a database", "database disk image is malformed", "file is encrypted", "unsupported file format")
_UNREACHABLE = ("failed to establish a new connection", "connection refused", "max retries exceeded", "read timed out",
                "connect timeout", "name or service not known", "temporary failure in name resolution", "connection aborted",
                "remote end closed connection")


def store_error(exc: BaseException, uri: str | None = None) -> StoreError | None:
    """A :class:`StoreError` for an exception that says the store itself is broken (a damaged SQLite
    file) or out of reach (a tracking server that does not answer), else None."""
    uri = uri or tracking_uri()
    seen = 0
    while exc is not None and seen < 6:
        text = str(exc).lower()
        if any(d in text for d in _DAMAGED):
            return damaged_store(uri, text)
        if "out-of-date database schema" in text:
            return StoreError(f"tracking store {uri} was written by an older MLflow ({' '.join(str(exc).split())[:90]}...); "
                              f"back it up, then run `mlflow db upgrade {uri}`")
        if any(u in text for u in _UNREACHABLE) and not uri.startswith("sqlite:"):
            return unreachable_store(uri, str(exc))
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def damaged_store(uri: str, why: str) -> StoreError:
    path = _sqlite_path(uri)
    reason = next((d for d in _DAMAGED if d in why.lower()), " ".join(why.split())[:120])
    if path is None:
        return StoreError(f"tracking store {uri} is damaged ({reason}); repair or restore it, or point MLFLOW_TRACKING_URI at another store")
    return StoreError(
        f"tracking store {path} is not a usable SQLite database ({reason}); move it aside "
        f"(mv {path} {path}.broken) to start a new store, or restore it from a backup; `riskmodel doctor` checks a store"
    )


def unreachable_store(uri: str, why: str) -> StoreUnavailable:
    first = " ".join(why.split())
    short = next((u for u in _UNREACHABLE if u in first.lower()), first[:100])
    return StoreUnavailable(
        f"tracking server {uri} does not answer ({short}); start it or check MLFLOW_TRACKING_URI "
        f"(unset it to use ./mlruns.db); nothing was written"
    )


def _retry(fn: Callable[..., Any], *args, _lock: bool = True, **kwargs) -> Any:
    """Call ``fn`` under the store lock, retrying with exponential backoff on SQLite lock errors. A
    damaged or unreachable store becomes a :class:`StoreError` (one line, what to do)."""
    delay = 0.05
    for attempt in range(_RETRIES):
        try:
            with _store_lock() if _lock else contextlib.nullcontext():
                return fn(*args, **kwargs)
        except Exception as exc:
            if not isinstance(exc, UserError):
                broken = store_error(exc)
                if broken is not None:
                    raise broken from exc
            if not _is_locked_error(exc) or attempt == _RETRIES - 1:
                raise
            lock_stats["retries"] += 1
            log.warning("tracking store busy (%s); retry %d/%d in %.2fs", type(exc).__name__, attempt + 1, _RETRIES, delay)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")  # pragma: no cover


def _read(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """A read-only store call or an artifact write: retried, but not under the store lock (in WAL
    mode readers never wait for the writer, and artifact files do not touch the database)."""
    return _retry(fn, *args, _lock=False, **kwargs)


class _PrintsToLog(MlflowLoggingStream):
    """MLflow prints some messages with ``eprint`` straight to stderr instead of logging them
    ("Successfully registered model ...", "Created version ..."). Put in place of MLflow's stream,
    this turns each printed line into an INFO record of the ``mlflow.eprint`` logger, so those
    messages follow the logging configuration like MLflow's other messages (the CLI: log file only,
    terminal with ``--verbose``)."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self._buffer = ""
        self._log = logging.getLogger("mlflow.eprint")

    def write(self, text) -> None:
        if not self.enabled:
            return
        self._buffer += str(text)
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if line.strip():
                self._log.info("%s", line)

    def flush(self) -> None:
        if self._buffer.strip():
            self._log.info("%s", self._buffer)
        self._buffer = ""


def _route_mlflow_prints() -> None:
    if not isinstance(mlflow_logging_utils.MLFLOW_LOGGING_STREAM, _PrintsToLog):
        mlflow_logging_utils.MLFLOW_LOGGING_STREAM = _PrintsToLog(mlflow_logging_utils.MLFLOW_LOGGING_STREAM.enabled)


def configure() -> str:
    """Point mlflow at :func:`tracking_uri` and make sure a SQLite store is migrated and in WAL mode.

    Called by every public function here (cheap after the first call per URI and process)."""
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr readable
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage data leaves a bank's machine
    for name, value in HTTP_DEFAULTS.items():  # a server that does not answer fails in seconds, not minutes
        os.environ.setdefault(name, value)
    _route_mlflow_prints()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri in _prepared:
        return uri
    check_scheme(uri)
    if uri.startswith(("http://", "https://")):
        probe_server(uri)
    path = _sqlite_path(uri)
    if path is not None and _existing_only.active and not path.is_file():
        raise StoreError(f"tracking store {path} does not exist (MLFLOW_TRACKING_URI={uri}): check the path for a typo; "
                         "only train, demo and federated-train create a store")
    if path is not None:
        check_sqlite_file(path)
        fresh = _needs_migration(path)
        # Creating the stores runs the schema migrations of a fresh file: do that under the lock so
        # simultaneous first runs do not race. A migrated store only needs reads here (no lock).
        with _store_lock(uri) if fresh else contextlib.nullcontext():
            client = MlflowClient(uri, registry_uri=uri)
            _retry(client.search_experiments, max_results=1, _lock=fresh)
            _retry(client.search_registered_models, max_results=1, _lock=fresh)
        if (fresh or _journal_mode(path) != "wal") and not _dry_run.active:
            with _store_lock(uri):
                _enable_wal(path)
    _prepared.add(uri)
    return uri


#: MLflow's HTTP client settings for our commands (each may be overridden in the environment). MLflow's
#: own defaults (7 retries, backoff factor 2, 120 s timeout) suit long-running jobs facing a rate
#: limit, but keep a command waiting about four minutes before it says a server is down.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
#: seconds the first request to a tracking server may take before the server counts as not answering
PROBE_TIMEOUT = 5.0


def probe_server(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """One request to a tracking server (its ``/health`` page), without retries: any HTTP answer
    but 404 will do; no answer within ``timeout`` seconds is a :class:`StoreUnavailable`, a 404 (a
    web server that is not MLflow's) a :class:`StoreError`."""
    import requests

    try:
        answer = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as exc:
        raise unreachable_store(uri, f"{type(exc).__name__}: {exc}") from None
    if answer.status_code == 404:  # a web server, but not MLflow's: every run and model would be "not found"
        raise StoreError(f"{uri} answers but is not an MLflow tracking server (GET /health: 404); check MLFLOW_TRACKING_URI "
                         "(the server's address, with its path prefix if it has one)")


#: URI schemes MLflow can keep runs and registered models in
STORE_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")


def check_scheme(uri: str) -> None:
    """A :class:`StoreError` for a tracking URI whose scheme holds no MLflow store (``ftp://``, a typo),
    or a folder store (a path, ``file://``), which MLflow refuses unless ``MLFLOW_ALLOW_FILE_STORE``."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme.lower().split("+", 1)[0]  # postgresql+psycopg2 -> postgresql
    if scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() not in ("1", "true", "yes"):
            raise StoreError(f"MLFLOW_TRACKING_URI {uri!r} is a folder store, which MLflow no longer opens by default; use "
                             "sqlite:///PATH/mlruns.db (`mlflow migrate-filestore` moves an existing folder store into one) "
                             "or set MLFLOW_ALLOW_FILE_STORE=true")
    elif scheme not in STORE_SCHEMES:
        raise StoreError(f"MLFLOW_TRACKING_URI {uri!r}: scheme {scheme!r} holds no tracking store; use sqlite:///PATH/mlruns.db, "
                         f"http(s)://SERVER or a database URI ({', '.join(STORE_SCHEMES)})")
    elif scheme == "sqlite" and not uri.lower().startswith("sqlite:///"):
        raise StoreError(f"MLFLOW_TRACKING_URI {uri!r} is not a SQLite URI SQLAlchemy can open: write sqlite:///relative/path.db "
                         "or sqlite:////absolute/path.db (three slashes, then the path)")


def check_sqlite_file(path: Path) -> None:
    """A :class:`StoreError` when ``path`` exists but is not an intact SQLite file: a wrong header
    ("file is not a database") or a file shorter than the pages its header counts (truncated). Reads
    the first 100 bytes only, so it runs before every command."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise StoreError(f"tracking store {path} cannot be read ({exc.strerror or exc}); check its permissions") from None
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        raise damaged_store(f"sqlite:///{path}", "file is not a database")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[92:96] == head[24:28]  # the in-header size is trusted only when this matches
    if valid and pages and path.stat().st_size < pages * page_size:
        raise damaged_store(f"sqlite:///{path}", f"database disk image is malformed: the file holds {path.stat().st_size:,} bytes, its header counts {pages * page_size:,} (truncated)")


class _DryRun(threading.local):
    active = False


_dry_run = _DryRun()


class _ExistingOnly(threading.local):
    active = False


_existing_only = _ExistingOnly()


@contextlib.contextmanager
def existing_store_only() -> Iterator[None]:
    """Inside the block a SQLite store that does not exist is a :class:`StoreError` instead of a new
    empty store: a command that only reads or updates tracked runs and models (score, compare,
    validate, ...) meets a mistyped ``MLFLOW_TRACKING_URI`` with a message, not with an empty store
    created at the typo and "model not found"."""
    before = _existing_only.active
    _existing_only.active = True
    try:
        yield
    finally:
        _existing_only.active = before


@contextlib.contextmanager
def without_housekeeping() -> Iterator[None]:
    """Open the store without switching it to WAL (``riskmodel doctor --dry-run`` changes nothing)."""
    before = _dry_run.active
    _dry_run.active = True
    try:
        yield
    finally:
        _dry_run.active = before


def _needs_migration(path: Path) -> bool:
    """True when ``path`` is not yet an MLflow database (missing, empty, or no schema version)."""
    if not path.is_file() or path.stat().st_size == 0:
        return True
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 0
        finally:
            con.close()
    except sqlite3.Error:
        return True


def _journal_mode(path: Path) -> str:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            con.close()
    except sqlite3.Error:
        return ""


def _enable_wal(path: Path) -> None:
    try:
        con = sqlite3.connect(str(path), timeout=30)
        try:
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error as exc:  # a read-only file or a busy store: retries still protect us
        log.warning("could not switch %s to WAL journal mode: %s", path, exc)


def client() -> MlflowClient:
    """An MlflowClient on the configured store."""
    uri = configure()
    return MlflowClient(uri, registry_uri=uri)


# --------------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------------


def get_or_create_experiment(name: str = DEFAULT_EXPERIMENT, artifact_location: str | None = None) -> str:
    """Experiment id of ``name``, creating it (optionally with ``artifact_location``) if needed."""
    c = client()

    def _get_or_create() -> str:
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise UserError(f"experiment {name!r} was deleted in {tracking_uri()}; restore it (`mlflow experiments restore`) or use another --experiment")
            return exp.experiment_id
        try:
            return c.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            return c.get_experiment_by_name(name).experiment_id

    return _retry(_get_or_create)


def _require_experiment(name: str):
    exp = _read(client().get_experiment_by_name, name)
    if exp is None or exp.lifecycle_stage == "deleted":
        names = [e.name for e in _read(client().search_experiments, max_results=50)]
        known = f" Experiments in this store: {', '.join(sorted(names))}." if names else " The store has no experiments yet."
        raise UserError(
            f"experiment {name!r} does not exist in {tracking_uri()}; train into it first "
            f"(`riskmodel train ... --experiment {name}`) or check MLFLOW_TRACKING_URI.{known}"
        )
    return exp
