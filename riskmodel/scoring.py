"""Batch scoring: validate, chunk, score, reject with reasons, write atomically.

Every input row ends in exactly one of two files: the scores (PD, score, grade, three reason codes
with their Chinese and English texts, model name and version) or the rejects (the row's id, its
position in the input, a reason code and a reason text). ``rows_in == scored + rejected`` always.

Whole-batch problems (the file cannot be read, a required column is missing, the model cannot be
loaded) raise :class:`~riskmodel.errors.ScoringError` before anything is written. The input is read
one Parquet row group batch (or CSV chunk) at a time, so memory does not grow with the input, and
both outputs are written to temporary files beside the targets and renamed at the end: a crash
never leaves a partial file at a target path.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskmodel.errors import ScoringError, UserError

log = logging.getLogger(__name__)

ID_COLUMN = "application_id"
PASS_THROUGH = ("firm_id", "application_date")
MAX_ABS = 1e12  # larger magnitudes are data errors in any feature we compute

# Reject reason codes and their texts (a credit operations team reads these).
REJECT_REASONS: dict[str, str] = {
    "MISSING_ID": "application_id is empty",
    "DUPLICATE_ID": "application_id already seen earlier in this batch",
    "NOT_NUMERIC": "a numeric feature holds a value that is not a number",
    "NOT_FINITE": "a numeric feature is infinite",
    "OUT_OF_RANGE": "a feature is outside its valid range",
}


@dataclass
class ScoreSummary:
    """Counts of one scoring run; ``rows_in == scored + rejected``."""

    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    model_uri: str = ""
    model_name: str = ""
    model_version: str = ""
    output: str = ""
    rejects: str = ""
    extra_columns: list[str] = field(default_factory=list)
    grade_counts: dict[str, int] = field(default_factory=dict)
    mean_pd: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _csv_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    try:
        yield from pd.read_csv(path, chunksize=chunk_size, dtype={ID_COLUMN: "string"}, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScoringError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-export the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise ScoringError(f"{path}: the CSV file has no header and no rows") from None
    except pd.errors.ParserError as exc:
        raise ScoringError(f"{path}: cannot parse CSV ({str(exc).splitlines()[0]})") from None


def read_columns(path: Path) -> list[str]:
    """Column names of a Parquet or CSV feature file, with a clear error when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise ScoringError(f"{path}: no such file")
    if path.is_dir():
        raise ScoringError(f"{path}: is a directory; --features expects a Parquet (or CSV) file")
    if path.stat().st_size == 0:
        raise ScoringError(f"{path}: the file is empty (0 bytes)")
    if path.suffix.lower() == ".csv":
        try:
            return list(pd.read_csv(path, nrows=0, encoding="utf-8").columns)
        except UnicodeDecodeError as exc:
            raise ScoringError(f"{path}: not UTF-8 text ({exc.reason}); re-export the CSV as UTF-8") from None
        except pd.errors.EmptyDataError:
            raise ScoringError(f"{path}: the CSV file has no header and no rows") from None
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise ScoringError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:120]}); pass a .parquet file or a .csv") from None


def iter_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Yield the input in chunks of at most ``chunk_size`` rows (Parquet batches or CSV chunks)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        yield from _csv_chunks(path, chunk_size)
        return
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise ScoringError(f"{path}: cannot read Parquet data ({str(exc).splitlines()[0][:120]})") from None


def count_rows(path: Path) -> int | None:
    """Rows in a Parquet file from its footer (None for CSV: unknown without reading it)."""
    if Path(path).suffix.lower() == ".csv":
        return None
    return pq.ParquetFile(path).metadata.num_rows


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def check_columns(columns: list[str], required: list[str], path: str = "input") -> list[str]:
    """Fail the whole batch when required columns are missing; return the extra columns (ignored)."""
    missing = [c for c in [ID_COLUMN, *required] if c not in columns]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ScoringError(
            f"{path}: {len(missing)} required column(s) missing: {shown}; "
            f"build the features with `riskmodel features` or score with --data DIR"
        )
    return [c for c in columns if c not in required and c != ID_COLUMN and c not in PASS_THROUGH]


@dataclass
class ValidationResult:
    """One chunk after validation: the clean feature rows and the rejected rows with reasons."""

    clean: pd.DataFrame
    rejects: pd.DataFrame


def validate_chunk(
    chunk: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    lower_bounds: dict[str, float],
    seen_ids: set[str],
    offset: int,
    duplicate: np.ndarray | None = None,
) -> ValidationResult:
    """Vectorised row checks on one chunk.

    A row is rejected (first failing rule wins, in the order of ``REJECT_REASONS``) when its id is empty
    or already seen, a numeric feature is not a number, infinite, above ``MAX_ABS`` in magnitude or below
    its lower bound (for features that cannot be negative). Missing values (NaN) are not errors: missing
    data is information the models use. ``offset`` is the chunk's first row number in the whole input.

    The first row carrying an id is the one that counts; every later row with the same id is a
    duplicate, whatever happened to the first. ``seen_ids`` carries ids across chunks; a caller that
    has already found duplicates (Spark, with a window) passes them as ``duplicate`` instead.
    """
    n = len(chunk)
    reason = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)

    def mark(mask: np.ndarray, code: str, text: np.ndarray | str) -> None:
        new = mask & (reason == "")
        reason[new] = code
        detail[new] = text[new] if isinstance(text, np.ndarray) else text

    ids = chunk[ID_COLUMN].astype("string")
    empty = (ids.isna() | (ids.str.strip() == "")).to_numpy(dtype=bool, na_value=True)
    mark(empty, "MISSING_ID", REJECT_REASONS["MISSING_ID"])
    id_values = ids.fillna("").to_numpy(dtype=object)
    if duplicate is None:
        dup_in_chunk = ids.duplicated(keep="first").to_numpy(dtype=bool)
        # Set lookups per id keep this linear in the input; ``isin(seen_ids)`` would rebuild a hash
        # table of every id seen so far for each chunk (quadratic on a 4M-row file).
        dup_before = np.fromiter((v in seen_ids for v in id_values), dtype=bool, count=n) if seen_ids else np.zeros(n, dtype=bool)
        duplicate = dup_in_chunk | dup_before
        seen_ids.update(id_values[~empty].tolist())
    mark(np.asarray(duplicate, dtype=bool) & ~empty, "DUPLICATE_ID", REJECT_REASONS["DUPLICATE_ID"])

    columns: dict[str, np.ndarray | pd.Series] = {}  # one frame built at the end, not a column insert per feature
    for col in numeric:
        raw = chunk[col]
        if pd.api.types.is_bool_dtype(raw):
            values = raw.astype("float64")
            bad = np.zeros(n, dtype=bool)
        elif pd.api.types.is_numeric_dtype(raw):
            values = raw.astype("float64")
            bad = np.zeros(n, dtype=bool)
        else:
            values = pd.to_numeric(raw, errors="coerce").astype("float64")
            bad = (raw.notna() & values.isna()).to_numpy(dtype=bool)
        if bad.any():
            text = np.full(n, "", dtype=object)
            text[bad] = [f"{col}={str(x)[:40]!r} is not a number" for x in raw.to_numpy()[bad]]
            mark(bad, "NOT_NUMERIC", text)
        v = values.to_numpy(dtype="float64", na_value=np.nan)
        inf = np.isinf(v)
        if inf.any():
            mark(inf, "NOT_FINITE", f"{col} is infinite")
        huge = np.isfinite(v) & (np.abs(v) > MAX_ABS)
        lo = lower_bounds.get(col)
        below = np.isfinite(v) & (v < lo) if lo is not None and np.isfinite(lo) else np.zeros(n, dtype=bool)
        out_of_range = huge | below
        if out_of_range.any():
            text = np.full(n, "", dtype=object)
            lo_text = f"{lo:g}" if lo is not None and np.isfinite(lo) else f"{-MAX_ABS:g}"
            text[out_of_range] = [f"{col}={x:.6g} outside [{lo_text}, {MAX_ABS:g}]" for x in v[out_of_range]]
            mark(out_of_range, "OUT_OF_RANGE", text)
        columns[col] = v
    for col in categorical:
        columns[col] = chunk[col].astype("string")

    bad_rows = reason != ""
    rejects = pd.DataFrame(
        {
            ID_COLUMN: id_values[bad_rows],
            "row": np.arange(offset, offset + n)[bad_rows],
            "reject_code": reason[bad_rows].astype(str),
            "reject_reason": [f"{REJECT_REASONS[c]}: {d}" if d and d != REJECT_REASONS[c] else REJECT_REASONS[c] for c, d in zip(reason[bad_rows], detail[bad_rows])],
        }
    )
    good = ~bad_rows
    clean = pd.DataFrame(columns, index=chunk.index)
    out = clean.loc[good]
    out.insert(0, ID_COLUMN, id_values[good])
    for col in PASS_THROUGH:
        if col in chunk.columns:
            out[col] = chunk.loc[good, col].to_numpy()
    return ValidationResult(out, rejects)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class AtomicParquetWriter:
    """Write Parquet chunks to a temporary file beside ``target``; ``commit()`` renames it into place.

    If the process dies or ``abort()`` is called, the target path is untouched (the temporary file is
    removed on abort; after kill -9 a ``.<name>.*.tmp`` file may remain beside it, never at the target).
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema.remove_metadata()
            self._writer = pq.ParquetWriter(self.tmp, self._schema, compression="zstd")
        table = table.cast(self._schema) if table.schema.remove_metadata() != self._schema else table
        self._writer.write_table(table)

    def commit(self, empty: pd.DataFrame) -> None:
        if self._writer is None:  # nothing written: still produce a valid (empty) file with the columns
            self.write(empty)
        self._writer.close()
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - best effort on an error path
                pass
        self.tmp.unlink(missing_ok=True)


def check_output_path(path: Path, flag: str = "--out") -> Path:
    """Fail before any work when the output cannot be written there."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory; give a file path such as {path}/scores.parquet")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is a file, not a directory")
    if not parent.exists():
        raise UserError(f"{flag} {path}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path}: directory {parent} is not writable")
    return path


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _progress(total: int | None, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="rows", unit_scale=True, desc="scoring", file=sys.stderr)


def _empty_scores(credit_model, columns: list[str]) -> pd.DataFrame:
    """The scores file's columns with no rows (a model cannot predict on zero rows)."""
    from riskmodel.creditmodel import output_columns

    keep = [c for c in (ID_COLUMN, *PASS_THROUGH) if c in columns or c == ID_COLUMN]
    names = [*keep, *output_columns(getattr(credit_model, "n_reasons", 3)), "model_name", "model_version"]
    dtypes = {"pd": "float64", "score": "float64", "application_date": "datetime64[ns]"}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "string")) for c in names})


def score_frames(
    credit_model,
    chunks: Iterator[pd.DataFrame],
    out: Path,
    rejects_out: Path | None = None,
    *,
    model_name: str = "",
    model_version: str = "",
    source: str = "input",
    total_rows: int | None = None,
    progress: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    columns: list[str] | None = None,
) -> ScoreSummary:
    """Validate and score a stream of feature chunks with ``credit_model`` (a :class:`CreditModel`).

    Writes scores to ``out`` and rejects to ``rejects_out`` (default: ``<out stem>.rejects.parquet``),
    both atomically. Returns the counts. ``columns`` (the input's column names, when known before
    reading, e.g. from a Parquet schema) lets a file with a header and no rows give empty outputs.
    """
    out = check_output_path(out)
    rejects_out = check_output_path(rejects_out or out.with_name(out.stem + ".rejects.parquet"), "--rejects")
    spec = credit_model.input_spec()
    numeric, categorical, bounds = spec["numeric"], spec["categorical"], spec["lower_bounds"]
    required = numeric + categorical

    summary = ScoreSummary(model_name=model_name, model_version=model_version, output=str(out), rejects=str(rejects_out))
    first = columns is None
    if columns is not None:
        summary.extra_columns = check_columns(columns, required, source)
    writer = AtomicParquetWriter(out)
    rwriter = AtomicParquetWriter(rejects_out)
    seen: set[str] = set()
    bar = _progress(total_rows, progress)
    grade_counts: dict[str, int] = {}
    pd_sum = 0.0
    empty_scores: pd.DataFrame | None = None
    try:
        offset = 0
        for chunk in chunks:
            if first:
                summary.extra_columns = check_columns(list(chunk.columns), required, source)
                first = False
            res = validate_chunk(chunk, numeric, categorical, bounds, seen, offset)
            offset += len(chunk)
            summary.rows_in += len(chunk)
            if len(res.rejects):
                rwriter.write(res.rejects)
                for code, k in res.rejects["reject_code"].value_counts().items():
                    summary.rejects_by_reason[str(code)] = summary.rejects_by_reason.get(str(code), 0) + int(k)
                summary.rejected += len(res.rejects)
            clean = res.clean
            if len(clean):  # a chunk whose rows were all rejected has nothing to predict
                scores = credit_model.predict(clean[required])
                keep = [c for c in (ID_COLUMN, *PASS_THROUGH) if c in clean.columns]
                frame = pd.concat([clean[keep].reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
                frame["model_name"] = model_name
                frame["model_version"] = model_version
                if empty_scores is None:
                    empty_scores = frame.iloc[0:0]
                if len(frame):
                    writer.write(frame)
                    summary.scored += len(frame)
                    pd_sum += float(frame["pd"].sum())
                    for g, k in frame["grade"].value_counts().items():
                        grade_counts[str(g)] = grade_counts.get(str(g), 0) + int(k)
            if bar is not None:
                bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk(summary.rows_in)
        if first:
            raise ScoringError(f"{source}: the input has no columns or no data")
        if empty_scores is None:  # no rows at all: empty outputs with the right columns
            empty_scores = _empty_scores(credit_model, columns or [])
        writer.commit(empty_scores)
        rwriter.commit(pd.DataFrame({ID_COLUMN: pd.Series(dtype="string"), "row": pd.Series(dtype="int64"), "reject_code": pd.Series(dtype="string"), "reject_reason": pd.Series(dtype="string")}))
    except BaseException:
        writer.abort()
        rwriter.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    summary.grade_counts = dict(sorted(grade_counts.items()))
    summary.mean_pd = pd_sum / summary.scored if summary.scored else None
    assert summary.rows_in == summary.scored + summary.rejected, "row accounting broken"
    return summary


def _frame_chunks(frame: pd.DataFrame, chunk_size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), chunk_size):
        yield frame.iloc[start : start + chunk_size]


def score(
    model_uri: str,
    out: str | Path,
    *,
    features: str | Path | None = None,
    data: str | Path | None = None,
    as_of: str | None = None,
    rejects: str | Path | None = None,
    chunk_size: int = 100_000,
    progress: bool = False,
) -> ScoreSummary:
    """Score a feature file (``features``) or a data directory (``data``: features are built
    point-in-time for its applications, or for every firm as of ``as_of``) with an MLflow model URI."""
    from riskmodel import tracking

    if (features is None) == (data is None):
        raise UserError("give exactly one of --features FILE or --data DIR")
    if chunk_size < 1:
        raise UserError(f"--chunk-size must be at least 1, got {chunk_size}")
    out = check_output_path(Path(out))
    if rejects is not None:
        check_output_path(Path(rejects), "--rejects")
    columns = None
    if features is not None:
        features = Path(features)
        columns = read_columns(features)  # fails early on unreadable input, before the model is loaded
    credit_model, name, version = tracking.load_credit_model(model_uri)
    if features is not None:
        chunks = iter_chunks(features, chunk_size)
        total, source = count_rows(features), str(features)
    else:
        from features.build import build_features
        from features.tables import load_tables

        tables, _ = load_tables(Path(data))
        apps = None if as_of else tables.get("applications")
        matrix = build_features(tables, apps, as_of=pd.Timestamp(as_of) if as_of else None)
        chunks, total, source = _frame_chunks(matrix, chunk_size), len(matrix), str(data)
    summary = score_frames(
        credit_model,
        chunks,
        out,
        Path(rejects) if rejects else None,
        model_name=name,
        model_version=version,
        source=source,
        total_rows=total,
        progress=progress,
        columns=columns,
    )
    summary.model_uri = model_uri
    return summary
