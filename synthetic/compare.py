"""Reproducibility across machines: comparing two datasets by value, and emulating another CPU.

numpy's exp, log and power give different last bits on different CPUs, so the same seed gives
byte-identical files on one machine but, across machines, only the same values: integers, dates,
strings, categories and booleans exactly, floats within a tolerance (data/synthetic/README.md,
"Reproducibility"). :func:`compare_datasets` checks that promise; :func:`other_cpu` runs the
generator as if on another CPU to measure how often it holds.
"""

from __future__ import annotations

import contextlib
import json
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.tables import TABLE_NAMES, table_files
from synthetic import identifiers, params, sources, world, writer
from synthetic.writer import FLOAT_PLACES, TRUTH_FILE

COMPARE_RTOL = 1e-9
MANIFEST_PLACES = 6  # floats in manifest.json (pd_intercept, default_rate_observed)
_MANIFEST_SAME_MACHINE = ("sha256", "bytes")  # depend on the exact float bits: a same-machine promise


@dataclass(frozen=True)
class Difference:
    """One way in which two datasets differ: a file, a column (or manifest key), and the first differing row."""

    file: str
    column: str = ""
    rows: int = 0  # rows that differ (0: not a row-by-row difference)
    of_rows: int = 0
    row: int = -1  # first differing row
    first: object = None  # its value in the first dataset
    second: object = None
    note: str = ""
    firm_id: str | None = None  # of the first differing row, where the table has one
    exact: bool = True  # False for a float column compared within a tolerance

    def __str__(self) -> str:
        label = "column " if self.file.endswith(".parquet") else ""  # a manifest key otherwise
        where = f"{self.file}: {label}{self.column}" if self.column else self.file
        if self.rows:
            firm = f" (firm_id {self.firm_id})" if self.firm_id else ""
            return (f"{where}: {self.rows:,} of {self.of_rows:,} rows differ{self.note}; first at row {self.row}{firm}: "
                    f"{_show(self.first)} != {_show(self.second)}")
        return f"{where}: {self.note}"


def _dataset_files(root: Path) -> dict[str, list[Path]]:
    """The dataset's Parquet data by name: each table as ``<table>.parquet`` whatever its layout (one
    file, or the part files of ``<table>/`` in order), and every other Parquet file by its path."""
    units: dict[str, list[Path]] = {}
    for name in TABLE_NAMES:
        files = table_files(root, name)
        if files:
            units[f"{name}.parquet"] = files
    taken = {f for files in units.values() for f in files}
    for p in sorted(root.rglob("*.parquet")):
        rel = p.relative_to(root)
        if p not in taken and not any(part.startswith(".") for part in rel.parts):
            units[rel.as_posix()] = [p]
    return units


def _unit_of(rel: str) -> str:
    """The table a file of a dataset belongs to (``electricity/part-00003.parquet`` ->
    ``electricity.parquet``), or the file itself."""
    head = rel.split("/", 1)[0]
    return f"{head}.parquet" if "/" in rel and head in TABLE_NAMES else rel


def _manifest_values(m: dict, other: dict) -> dict:
    """A manifest as values, not layout: its files as rows per table (the layout of the tables is
    not a value), and the partitioning only when both datasets are partitioned."""
    m = dict(m)
    if isinstance(m.get("files"), dict):
        files: dict[str, dict] = {}
        for rel, info in m["files"].items():
            unit = files.setdefault(_unit_of(rel), {"rows": 0})
            unit["rows"] += info.get("rows", 0) if isinstance(info, dict) else 0
        m["files"] = files
    if "partitioning" not in other:
        m.pop("partitioning", None)
    return m


def _show(v) -> str:
    if v is None:
        return "null"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return repr(v)


def _float_close(x: np.ndarray, y: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    both_nan = np.isnan(x) & np.isnan(y)
    with np.errstate(invalid="ignore"):
        close = np.abs(x - y) <= atol + rtol * np.maximum(np.abs(x), np.abs(y))
    return both_nan | (x == y) | close


def _column(files: list[Path], name: str) -> pa.Array:
    return pa.concat_arrays([pq.read_table(f, columns=[name]).column(name).combine_chunks() for f in files])


def _compare_file(rel: str, fa: list[Path], fb: list[Path], rtol: float, atol: float | None) -> list[Difference]:
    table = "truth" if rel == TRUTH_FILE else rel.removesuffix(".parquet")
    places = FLOAT_PLACES.get(table, {})
    sa, sb = pq.read_schema(fa[0]), pq.read_schema(fb[0])
    out = []
    if sa.names != sb.names:
        only_a = [c for c in sa.names if c not in sb.names]
        only_b = [c for c in sb.names if c not in sa.names]
        out.append(Difference(rel, note=f"columns differ: only in the first {only_a}, only in the second {only_b}, "
                                         f"order {sa.names} vs {sb.names}"))
    na = sum(pq.ParquetFile(f).metadata.num_rows for f in fa)
    nb = sum(pq.ParquetFile(f).metadata.num_rows for f in fb)
    if na != nb:
        return out + [Difference(rel, note=f"{na:,} rows != {nb:,} rows")]
    for name in (c for c in sa.names if c in sb.names):
        ta, tb = sa.field(name).type, sb.field(name).type
        if ta != tb:
            out.append(Difference(rel, name, note=f"type {ta} != {tb}"))
            continue
        ca, cb = _column(fa, name), _column(fb, name)
        is_float = pa.types.is_floating(ta)
        if is_float:
            x = ca.to_numpy(zero_copy_only=False).astype(np.float64)
            y = cb.to_numpy(zero_copy_only=False).astype(np.float64)
            tol = atol if atol is not None else (1.5 * 10.0 ** -places[name] if name in places else 0.0)
            bad = ~_float_close(x, y, rtol, tol)
            note = f" (by more than {tol:g} + {rtol:g} x value)"
        else:
            same = pc.or_kleene(pc.equal(ca, cb), pc.and_(pc.is_null(ca), pc.is_null(cb)))
            bad = ~np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False), dtype=bool)
            note = ""
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            firm = _column(fa, "firm_id")[i].as_py() if "firm_id" in sa.names and name != "firm_id" else None
            out.append(Difference(rel, name, int(bad.sum()), na, i, ca[i].as_py(), cb[i].as_py(), note, firm, exact=not is_float))
    return out


def _compare_json(path: str, a, b, rtol: float, atol: float) -> list[Difference]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in _MANIFEST_SAME_MACHINE and path.startswith("files."):
                continue
            if k not in a or k not in b:
                out.append(Difference("manifest.json", f"{path}{k}", note=f"only in the {'first' if k in a else 'second'} dataset"))
            else:
                out += _compare_json(f"{path}{k}.", a[k], b[k], rtol, atol)
        return out
    if isinstance(a, float) and isinstance(b, float):
        ok = bool(_float_close(np.array([a]), np.array([b]), rtol, atol)[0])
    else:
        ok = a == b and type(a) is type(b)
    return [] if ok else [Difference("manifest.json", path.rstrip("."), note=f"{a!r} != {b!r}", exact=not isinstance(a, float))]


def differences(a: str | Path, b: str | Path, rtol: float = COMPARE_RTOL, atol: float | None = None) -> list[Difference]:
    """``compare_datasets`` as records (for code that counts differences, such as the portability benchmark)."""
    a, b = Path(a), Path(b)
    out: list[Difference] = []
    files_a, files_b = _dataset_files(a), _dataset_files(b)
    for rel in sorted(set(files_a) ^ set(files_b)):
        out.append(Difference(rel, note=f"only in {a if rel in files_a else b}"))
    ma, mb = a / "manifest.json", b / "manifest.json"
    if ma.exists() and mb.exists():
        matol = 1.5 * 10.0**-MANIFEST_PLACES if atol is None else atol
        ja, jb = json.loads(ma.read_text()), json.loads(mb.read_text())
        if isinstance(ja, dict) and isinstance(jb, dict):
            ja, jb = _manifest_values(ja, jb), _manifest_values(jb, ja)
        out += _compare_json("", ja, jb, rtol, matol)
    elif ma.exists() or mb.exists():
        out.append(Difference("manifest.json", note=f"only in {a if ma.exists() else b}"))
    for rel in sorted(set(files_a) & set(files_b)):
        out += _compare_file(rel, files_a[rel], files_b[rel], rtol, atol)
    return out


def compare_datasets(a: str | Path, b: str | Path, rtol: float = COMPARE_RTOL, atol: float | None = None) -> list[str]:
    """Differences between two generated datasets, one readable line each; ``[]`` when they hold the same values.

    This is the cross-machine test of reproducibility (data/synthetic/README.md, "Reproducibility"):
    the same tables and row counts, the same column names, order and types, and the same values
    row by row. A table is compared as one whatever its layout (``<table>.parquet``, or the part
    files of ``<table>/`` in order), so a dataset written in parts equals the same dataset in files. Integers, dates, strings, categories and booleans must be equal (null equals null);
    a float may differ by ``atol + rtol * |value|``, where ``atol`` defaults to 1.5 units in the last
    decimal place the column is written with (``FLOAT_PLACES``: a value on a rounding boundary may
    round the other way on another CPU). The manifest must match too, except the sha256 and byte
    size of each file, which depend on the exact float bits (a same-machine promise); its floats are
    written with ``MANIFEST_PLACES`` places. Each line names the file, the column, how many rows
    differ, and the first of them with both values.
    """
    return [str(d) for d in differences(a, b, rtol, atol)]


_NOISY = ("exp", "log", "log1p", "expm1", "power")  # what numpy computes with CPU-specific code paths
_GENERATOR_MODULES = (params, world, identifiers, sources, writer)  # every module whose numpy other_cpu replaces


class _NoisyNumpy(types.ModuleType):
    """``numpy`` as the generator sees it, except that ``_NOISY`` functions perturb their results."""

    def __init__(self, ulps: float, rng: np.random.Generator):
        super().__init__("numpy")
        self._numpy = real = np  # the module global is patched while this is in use
        step = ulps * real.finfo(real.float64).eps

        def noisy(fn):
            def wrapped(*args, **kwargs):
                r = fn(*args, **kwargs)
                return r * (1.0 + step * rng.uniform(-1.0, 1.0, real.shape(r)))

            return wrapped

        for name in _NOISY:
            setattr(self, name, noisy(getattr(real, name)))

    def __getattr__(self, name):
        return getattr(self.__dict__["_numpy"], name)


@contextlib.contextmanager
def other_cpu(ulps: float = 4.0, seed: int = 0):
    """Run the generator as if on another CPU: every ``np.exp``, ``np.log``, ``np.log1p``, ``np.expm1``
    and ``np.power`` it calls returns its result times ``1 + u * ulps * 2**-52`` with ``u`` uniform in
    [-1, 1] (about ``ulps`` units in the last place), drawn from a stream of its own so the generator's
    draws are unchanged. Different CPUs differ by a few units; larger ``ulps`` measure how often a
    difference reaches the written data (benchmarks/bench_generate_portability.py). Patches module
    globals, so not thread-safe; for tests and benchmarks only.
    """
    noisy = _NoisyNumpy(float(ulps), np.random.default_rng(seed))
    modules = _GENERATOR_MODULES
    saved = [m.np for m in modules]
    writer._calibrate.cache_clear()  # the intercept is recomputed under the noise, and not kept afterwards
    try:
        for m in modules:
            m.np = noisy
        yield
    finally:
        for m, orig in zip(modules, saved):
            m.np = orig
        writer._calibrate.cache_clear()
