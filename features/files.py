"""Every file the project writes is written here, one way: atomically, never over an input, one
writer at a time.

Two pieces, used by every command that writes:

* :func:`check_outputs`, the output-path rule, applied before any work starts. An output is never an
  input of the same run (same resolved path or same inode, so symlinks and hard links count), never
  another output of the same run, and its suffix decides its format (a mismatch is refused, never
  written in another format under the given name).
* :class:`AtomicOutput`, the one atomic writer. The content goes to an exclusive temporary name
  beside the target (``.<name>.<random>.tmp``) and is renamed into place only when it is complete,
  so a crash, Ctrl-C or ``kill -9`` never leaves a partial file at the target path (``kill -9`` may
  leave the temporary file beside it). While it writes, it holds an advisory lock on
  ``.<name>.lock``: a second process writing the same target is refused with a message instead of
  silently replacing the first one's result. Missing parent folders are created. Permissions follow
  the process umask, as for any file a program creates (the temporary file would otherwise keep
  ``mkstemp``'s 0600); set the umask to keep outputs private.

A full or read-only disk, or a folder without write permission, becomes an :class:`OutputError`
naming the target and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path

from features.errors import OutputError

try:  # advisory locks are POSIX; elsewhere the exclusive temporary name still protects the target
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: formats decided by the suffix of an output path
FORMATS: dict[str, str] = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".html": "html", ".md": "md", ".sql": "sql", ".txt": "text"}

_WRITE_ONLY_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def output_format(path: str | Path, allowed: Collection[str] | None = None, flag: str = "--out") -> str:
    """The format an output's suffix asks for (``FORMATS``), or an :class:`OutputError` when the
    suffix is unknown or not one of ``allowed`` (suffixes such as ``".parquet"``)."""
    suffix = Path(path).suffix.lower()
    choices = sorted(allowed) if allowed is not None else sorted(FORMATS)
    if suffix not in choices or suffix not in FORMATS:
        given = f"suffix {suffix!r}" if suffix else "no suffix"
        raise OutputError(f"{flag} {path}: {given}; the suffix decides the format, use {' or '.join(choices)}")
    return FORMATS[suffix]


def _same(a: Path, b: Path) -> bool:
    """True when two paths name one file: equal after resolving symlinks, or hard links of one inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` lies under ``folder`` (resolved; ``folder`` need not exist yet)."""
    inner, outer = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return inner != outer and outer in inner.parents


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    inputs: Iterable[str | Path] = (),
    *,
    suffixes: Mapping[str, Collection[str]] | None = None,
    directories: Collection[str] = (),
) -> dict[str, Path]:
    """The output-path rule, checked before any work: returns ``{flag: Path}`` of the outputs given.

    ``outputs`` maps each option (``"--out"``, ``"--rejects"``) to its path (None: not written).
    ``inputs`` are the files the run reads (a directory input names the directory itself; its own
    files are listed by the caller, e.g. :func:`features.tables.hub_paths`). An output under an
    input (a table's folder of part files, ``truth/``) is refused too: it would join the input. ``suffixes`` limits
    an output's suffix (its format); ``directories`` names the outputs that are folders."""
    outs = {flag: Path(p) for flag, p in outputs.items() if p is not None and str(p) != ""}
    ins = [Path(p) for p in inputs if p is not None]
    for flag, path in outs.items():
        if flag in directories:
            if path.exists() and not path.is_dir():
                raise OutputError(f"{flag} {path} is an existing file; give a folder path")
            if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
                raise OutputError(f"{flag} {path}: folder {path} is not writable; choose another path")
        elif path.is_dir():
            raise OutputError(f"{flag} {path} is a folder; give a file path inside it")
        if suffixes and flag in suffixes:
            output_format(path, suffixes[flag], flag)
        for parent in path.absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(f"{flag} {path}: {parent} is a file, not a folder")
                if not os.access(parent, os.W_OK | os.X_OK):
                    raise OutputError(f"{flag} {path}: folder {parent} is not writable; choose another path")
                break
        for src in ins:
            if _same(path, src):
                raise OutputError(f"{flag} {path} is also an input of this run ({src}); writing it would destroy the input, choose another path")
        for src in ins:
            if _inside(path, src):
                raise OutputError(f"{flag} {path} is inside {src}, an input folder of this run (a table's part files, truth/); "
                                  "a file written there would be read as part of the input, choose another path")
    flags = list(outs)
    for i, a in enumerate(flags):
        for b in flags[i + 1 :]:
            if _same(outs[a], outs[b]):
                raise OutputError(f"{a} and {b} both name {outs[a]}; give each output its own path")
    return outs


def _umask() -> int:
    """The process umask, read without changing it where the kernel reports it (Linux 4.7+)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)  # pragma: no cover - other systems: set and restore
    os.umask(old)
    return old  # pragma: no cover


def disk_error(exc: OSError, target: str | Path) -> OutputError | None:
    """An :class:`OutputError` for an OSError that means the target's disk or folder refuses the
    write (full, read-only, no permission), else None."""
    what = _DISK_ERRORS.get(exc.errno or 0)
    if what is None:
        return None
    folder = Path(target).absolute().parent
    return OutputError(f"cannot write {target}: {what} ({folder}); free space, fix the permissions or choose another path")


class AtomicOutput:
    """The one atomic writer. Use as a context manager::

        with AtomicOutput(path) as tmp:      # tmp: the temporary path to write to
            write(tmp)                        # renamed to path when the block ends without error

    or call :meth:`open`, :meth:`commit` and :meth:`abort` yourself when writing spans a pipeline.
    ``directory=True`` writes a folder (the temporary path is a new empty folder); an existing folder
    at the target is replaced only at commit. See the module docstring for the guarantees."""

    def __init__(self, target: str | Path, *, directory: bool = False):
        self.target = Path(target)
        self.directory = directory
        self.tmp: Path | None = None
        self._lock_fd: int | None = None
        self._lock_path = self.target.with_name(f".{self.target.name}.lock")

    # ---- lock -------------------------------------------------------------------------------
    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        while True:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputError(
                    f"another process is writing {self.target} right now (lock {self._lock_path}); "
                    "wait for it to finish or choose another output path"
                ) from None
            # The file may have been unlinked by the previous holder between our open and our lock:
            # then our lock guards nothing, so take the lock again on the file that is there now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self._lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self._lock_path)  # unlink while holding the lock: see _lock
        os.close(self._lock_fd)
        self._lock_fd = None

    # ---- lifecycle --------------------------------------------------------------------------
    def open(self) -> Path:
        """Create missing parent folders, take the lock and create the temporary file or folder."""
        parent = self.target.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._remove_orphans(parent)
            mode = 0o777 & ~_umask()
            if self.directory:
                tmp = tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=parent)
                os.chmod(tmp, mode)
            else:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=parent)
                os.close(fd)
                os.chmod(tmp, mode & 0o666)
        except OSError as exc:
            self._unlock()
            raise (disk_error(exc, self.target) or OutputError(f"cannot write {self.target}: {exc.strerror or exc}")) from None
        self.tmp = Path(tmp)
        return self.tmp

    def _remove_orphans(self, parent: Path) -> None:
        """Remove this target's temporaries a killed writer left (``.<name>.<8 chars>.tmp`` or
        ``.old``): with the lock held no live writer of the target has one."""
        pattern = re.compile(rf"\.{re.escape(self.target.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")
        for p in parent.iterdir():
            if pattern.fullmatch(p.name):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        p.unlink()

    def commit(self) -> Path:
        """Move the finished temporary file or folder to the target; returns the target."""
        assert self.tmp is not None, "AtomicOutput.commit before open"
        try:
            if self.directory and self.target.is_dir() and not self.target.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".old", dir=self.target.absolute().parent))
                old.rmdir()
                os.rename(self.target, old)
                os.rename(self.tmp, self.target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.target)
        except OSError as exc:
            self.abort()
            raise (disk_error(exc, self.target) or OutputError(f"cannot write {self.target}: {exc.strerror or exc}")) from None
        self.tmp = None
        self._unlock()
        return self.target

    def abort(self) -> None:
        """Remove the temporary file or folder; the target is left as it was."""
        if self.tmp is not None:
            if self.directory:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    self.tmp.unlink()
            self.tmp = None
        self._unlock()

    def __enter__(self) -> Path:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
            return False
        self.abort()
        if isinstance(exc, OSError) and exc.errno in _WRITE_ONLY_ERRORS:  # a read error keeps its own message
            raise disk_error(exc, self.target) from None
        return False


def orphaned_temporaries(folders: Iterable[str | Path]) -> list[Path]:
    """Temporary files :class:`AtomicOutput` left in ``folders`` when its process was killed
    (``.<name>.<random>.tmp``) and that no live writer owns: their target's lock is free (a running
    writer holds it from open to commit). Folders (``directory=True`` outputs) included."""
    found = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for tmp in sorted(folder.glob(".*.tmp")):
            name = tmp.name[1:-len(".tmp")].rsplit(".", 1)[0]
            lock = folder / f".{name}.lock"
            if fcntl is not None and lock.exists() and not _lock_is_free(lock):
                continue  # a live writer (or a lock this process cannot open)
            found.append(tmp)
    return found


#: a work folder without a lock file this old (seconds) is a killed build's, not one being created
WORK_GRACE_SECONDS = 600


def _lock_is_free(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def orphaned_work_folders(parent: str | Path) -> list[Path]:
    """Work folders (``.<name>.<random>.work``, :func:`work_folder`) in ``parent`` whose process is
    gone: their lock is free, or they have none and are older than ``WORK_GRACE_SECONDS``."""
    parent = Path(parent)
    if fcntl is None or not parent.is_dir():  # pragma: no cover - no flock: never guess
        return []
    found = []
    for folder in sorted(parent.glob(".*.work")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        lock = folder / ".lock"
        if lock.exists():
            if _lock_is_free(lock):
                found.append(folder)
        else:
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > WORK_GRACE_SECONDS:
                    found.append(folder)
    return found


@contextlib.contextmanager
def work_folder(parent: str | Path, name: str) -> Iterator[Path]:
    """A private scratch folder ``<parent>/.<name>.<random>.work``, locked while the block runs and
    removed at its end. Folders of killed runs in ``parent`` (``orphaned_work_folders``) are removed
    first, so a rerun after ``kill -9`` does not leave its predecessor's data behind."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for old in orphaned_work_folders(parent):
            shutil.rmtree(old, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".work", dir=parent))
    except OSError as exc:
        raise (disk_error(exc, parent) or OutputError(f"cannot create a work folder in {parent}: {exc.strerror or exc}")) from None
    fd = None
    try:
        if fcntl is not None:
            fd = os.open(work / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield work
    finally:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def atomic_output(target: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """``with atomic_output(path) as tmp:`` — :class:`AtomicOutput` as a function."""
    with AtomicOutput(target, directory=directory) as tmp:
        yield tmp


def write_text(target: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically; returns the target."""
    with atomic_output(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Write bytes atomically; returns the target."""
    with atomic_output(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)
