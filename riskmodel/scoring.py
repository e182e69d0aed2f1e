"""Batch scoring: validate, chunk, score, reject with reasons, write atomically.

Every input row ends in exactly one of two files: the scores (PD, score, grade, three reason codes
with their Chinese and English texts, model name and version) or the rejects (the row's id, its
position in the input, a reason code and a reason text). ``rows_in == scored + rejected`` always.

Whole-batch problems (the file cannot be read, a required column is missing, the model cannot be
loaded) raise :class:`~riskmodel.errors.ScoringError` before anything is written. A feature file is
read twice, one Parquet row group batch (or CSV chunk) at a time: first its id column alone, to find
the duplicate ids with bucket files on disk (:func:`~riskmodel.ids.find_duplicates`), then the
model's columns, to score. Neither pass holds more than a few chunks (the duplicates are one bit
per row), so memory does not grow with the input.

Outputs follow the one rule of :mod:`features.files`: checked before any work (neither output is
an input of the run nor the other output; the suffix, ``.parquet`` or ``.csv``, decides the format
and both formats hold the same columns), written through :class:`~features.files.AtomicOutput`
(temporary files beside the targets, renamed at the end: a crash never leaves a partial file at a
target path), with both targets locked from the start, so a second run writing the same files is
refused with a message. Missing parent folders are created.
"""

from __future__ import annotations

import logging
import queue
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import DATE, FIRM, KEY
from features.files import AtomicOutput, check_outputs, disk_error, output_format
from features.tables import hub_paths
from riskmodel import usertables
from riskmodel.errors import ScoringError, UserError
from riskmodel.ids import DuplicateRows, IdLedger, empty_ids, find_duplicates, id_strings
from riskmodel.usertables import ROW_ERROR, count_rows, to_numbers

log = logging.getLogger(__name__)

ID_COLUMN = KEY  # the row key of a features file and of its scores
PASS_THROUGH = (FIRM, DATE)  # copied from the features file to the scores when present
OUTPUT_SUFFIXES = (".parquet", ".csv")  # formats of the scores and rejects files, decided by the suffix
MAX_ABS = 1e12  # larger magnitudes are data errors in any feature we compute

# Reject reason codes and their texts (a credit operations team reads these).
REJECT_REASONS: dict[str, str] = {
    "MALFORMED_ROW": "the CSV record has the wrong number of fields",
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
# Reading (riskmodel.usertables; a file that cannot be read fails the batch: ScoringError)
# --------------------------------------------------------------------------------------------


def read_columns(path: Path) -> list[str]:
    """Column names of a Parquet or CSV feature file (:func:`riskmodel.usertables.read_columns`)."""
    return usertables.read_columns(path, ScoringError)


def iter_chunks(path: Path, chunk_size: int, columns: list[str] | None = None, row_groups: list[int] | None = None) -> Iterator[pd.DataFrame]:
    """The feature file in chunks of at most ``chunk_size`` rows (:func:`riskmodel.usertables.iter_chunks`;
    ``row_groups``: a Spark task's share of a Parquet file)."""
    return usertables.iter_chunks(path, chunk_size, columns, error=ScoringError, row_groups=row_groups)


def columns_read(spec: dict) -> list[str]:
    """The input columns scoring reads for a model's ``input_spec()``: the id, the pass-through
    columns and the features the model uses."""
    return [ID_COLUMN, *PASS_THROUGH, *spec["numeric"], *spec["categorical"]]


def find_duplicate_rows(
    path: Path, chunk_size: int, directory: Path, stop: threading.Event | None = None, on_chunk: Callable[[int], None] | None = None
) -> DuplicateRows | None:
    """The rows of a feature file whose application_id repeats an earlier row's: a first pass over
    the id column alone (:func:`~riskmodel.ids.find_duplicates`), its bucket files in a temporary
    directory inside ``directory`` (the output's, known to be writable; removed at the end). Returns
    None when ``stop`` is set before the pass ends (the answer is no longer wanted). ``on_chunk``
    gets the number of rows of each chunk read (for a progress bar)."""

    def ids() -> Iterator[pa.LargeStringArray]:
        for chunk in iter_chunks(path, chunk_size, columns=[ID_COLUMN]):
            if stop is not None and stop.is_set():
                return
            if on_chunk is not None:
                on_chunk(len(chunk))
            yield id_strings(chunk[ID_COLUMN])

    with tempfile.TemporaryDirectory(prefix=".riskmodel-ids.", dir=directory) as work:
        found = find_duplicates(ids(), Path(work), count_rows(path))
    return None if stop is not None and stop.is_set() else found


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def check_columns(columns: list[str], required: list[str], path: str = "input") -> list[str]:
    """Fail the whole batch when required columns are missing; return the extra columns (ignored)."""
    missing = [c for c in required if c not in columns]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ScoringError(
            f"{path}: {len(missing)} required column(s) missing: {shown}; give the columns the model was trained on "
            f"(for a model trained on a data hub: build them with `riskmodel features` or score with --data DIR)"
        )
    if ID_COLUMN not in columns:
        raise ScoringError(f"{path}: no {ID_COLUMN} column; scoring needs one unique id per row (it keys the scores and the rejects): "
                           f"add an {ID_COLUMN} column")
    return [c for c in columns if c not in required and c not in (ID_COLUMN, ROW_ERROR) and c not in PASS_THROUGH]


@dataclass
class ValidationResult:
    """One chunk after validation: the clean feature rows, the rejected rows with reasons, and the
    clean rows' ids as an Arrow array (for writing the scores without converting them again)."""

    clean: pd.DataFrame
    rejects: pd.DataFrame
    ids: pa.Array | None = None


def validate_chunk(
    chunk: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    lower_bounds: dict[str, float],
    seen: IdLedger | None,
    offset: int,
    duplicate: np.ndarray | None = None,
) -> ValidationResult:
    """Vectorised row checks on one chunk.

    A row is rejected when it is a CSV record with the wrong number of fields (its
    :data:`~riskmodel.usertables.ROW_ERROR` says which), its id is empty (null, blank or an NA token:
    :data:`~riskmodel.usertables.NA_TOKENS`) or already seen, or a numeric feature is not a number,
    infinite, above ``MAX_ABS`` in magnitude or below its lower bound (for features that cannot be
    negative). The first failing rule in the order of ``REJECT_REASONS`` gives the reason, and the
    reason text names the first column failing that rule. Missing values (NaN) are not errors:
    missing data is information the models use. ``offset`` is the chunk's first row number in the
    whole input.

    The first row carrying an id is the one that counts; every later row with the same id is a
    duplicate, whatever happened to the first. ``seen`` (an :class:`~riskmodel.ids.IdLedger`)
    carries ids across chunks; a caller that has already found duplicates (Spark, with a window)
    passes them as ``duplicate`` instead.

    Cost: the checks are a few reductions per column; per-row work (masks, texts) happens only in
    columns that have a problem. Numeric columns already float64 pass through without a copy, and
    when no row is rejected the clean frame is the chunk itself.
    """
    n = len(chunk)
    reason = np.zeros(n, dtype=np.int8)  # 0 = clean, else 1 + position in REJECT_REASONS
    detail = np.full(n, None, dtype=object)
    codes = list(REJECT_REASONS)

    def mark(mask: np.ndarray, code: str, text) -> None:
        new = mask & (reason == 0)
        if new.any():
            reason[new] = codes.index(code) + 1
            detail[new] = text[new] if isinstance(text, np.ndarray) else text

    if ROW_ERROR in chunk.columns:  # a CSV record with the wrong number of fields: its place, no values
        row_error = chunk[ROW_ERROR]
        malformed = row_error.notna().to_numpy(dtype=bool)
        if malformed.any():
            mark(malformed, "MALFORMED_ROW", row_error.to_numpy(dtype=object, na_value=None))
    ids = id_strings(chunk[ID_COLUMN])
    empty = empty_ids(ids)
    mark(empty, "MISSING_ID", None)
    if duplicate is None:
        duplicate = (seen if seen is not None else IdLedger()).check(ids, empty)
    mark(np.asarray(duplicate, dtype=bool) & ~empty, "DUPLICATE_ID", None)

    converted: dict[str, np.ndarray] = {}
    problems: dict[str, list] = {"NOT_NUMERIC": [], "NOT_FINITE": [], "OUT_OF_RANGE": []}
    for col in numeric:
        raw = chunk[col]
        v, not_number = to_numbers(raw)
        if raw.dtype != np.float64:
            converted[col] = v
        if not_number is not None and not_number.any():
            problems["NOT_NUMERIC"].append((col, not_number, raw))
        if not n:
            continue
        top, bottom = np.fmax.reduce(v), np.fmin.reduce(v)  # NaN ignored; +-inf included
        lo = lower_bounds.get(col)
        bounded = lo is not None and np.isfinite(lo)
        if not (top > MAX_ABS or bottom < -MAX_ABS or (bounded and bottom < lo)):
            continue  # the common case: nothing to look at row by row
        inf = np.isinf(v)
        if inf.any():
            problems["NOT_FINITE"].append((col, inf, None))
        finite = np.isfinite(v)
        outside = finite & ((np.abs(v) > MAX_ABS) | ((v < lo) if bounded else False))
        if outside.any():
            problems["OUT_OF_RANGE"].append((col, outside, (v, f"{lo:g}" if bounded else f"{-MAX_ABS:g}")))
    for code, found in problems.items():  # rule by rule, so the first rule in REJECT_REASONS wins
        for col, mask, extra in found:
            text = np.full(n, None, dtype=object)
            if code == "NOT_NUMERIC":
                text[mask] = [f"{col}={str(x)[:40]!r} is not a number" for x in extra.to_numpy()[mask]]
            elif code == "NOT_FINITE":
                text[mask] = f"{col} is infinite"
            else:
                v, lo_text = extra
                text[mask] = [f"{col}={x:.6g} outside [{lo_text}, {MAX_ABS:g}]" for x in v[mask]]
            mark(mask, code, text)

    bad = reason > 0
    bad_rows = np.flatnonzero(bad)
    reject_codes = [codes[r - 1] for r in reason[bad_rows]]
    rejects = pd.DataFrame(
        {
            ID_COLUMN: ids.take(pa.array(bad_rows)).fill_null("").to_numpy(zero_copy_only=False).astype(object),
            "row": offset + bad_rows,
            "reject_code": np.asarray(reject_codes, dtype=object),
            "reject_reason": [f"{REJECT_REASONS[c]}: {d}" if d else REJECT_REASONS[c] for c, d in zip(reject_codes, detail[bad_rows])],
        }
    )
    assign: dict = dict(converted)
    assign.update({c: chunk[c].astype("string") for c in categorical if not isinstance(chunk[c].dtype, pd.StringDtype)})
    if not isinstance(chunk[ID_COLUMN].dtype, pd.StringDtype):
        assign[ID_COLUMN] = chunk[ID_COLUMN].astype("string")
    keep = [c for c in PASS_THROUGH if c in chunk.columns]
    clean = chunk[[ID_COLUMN, *keep, *numeric, *categorical]]
    if assign:
        clean = clean.assign(**assign)
    if len(bad_rows):
        clean = clean.loc[~bad]
        ids = ids.filter(pa.array(~bad))
    return ValidationResult(clean, rejects, ids)


def find_application(path: str | Path, application_id: str) -> pd.DataFrame:
    """The one row of a feature file whose id is ``application_id`` (read as scoring reads it); a
    UserError when the file has no id column, lacks the id or holds it more than once."""
    path = Path(path)
    columns = usertables.read_columns(path, UserError, "--features")
    if ID_COLUMN not in columns:
        raise UserError(f"--features {path} has no {ID_COLUMN} column")
    if usertables.is_csv(path):
        parts = [c[c[ID_COLUMN] == application_id] for c in usertables.iter_chunks(path, 100_000)]
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    else:
        try:
            table = pq.read_table(path, filters=[(ID_COLUMN, "=", application_id)])
        except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
            raise UserError(f"--features {path}: cannot read Parquet data ({' '.join(str(exc).split())[:160]})") from None
        frame = usertables.normalize_table(table).to_pandas()
    if frame.empty:
        raise UserError(f"application_id {application_id!r} is not in {path}")
    if len(frame) > 1:
        raise UserError(f"application_id {application_id!r} appears {len(frame)} times in {path}; ids must be unique")
    return frame.reset_index(drop=True)


def validated_row(credit_model, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """One row checked by the rules of :func:`validate_chunk`, its numeric features as float64; a
    UserError giving the reject reason when scoring would reject it."""
    missing = [c for c in credit_model.used_features if c not in frame.columns]
    if missing:
        raise UserError(f"{where}: the file lacks {len(missing)} column(s) the model needs: {missing[:10]}")
    spec = credit_model.input_spec()
    res = validate_chunk(frame, spec["numeric"], spec["categorical"], spec["lower_bounds"], None, 0)
    if len(res.rejects):
        raise UserError(f"{where} cannot be scored: {res.rejects['reject_reason'].iloc[0]}")
    row = frame.copy()
    for c in res.clean.columns:
        row[c] = res.clean[c].to_numpy()
    for c, dt in credit_model.dtypes.items():
        if dt == "float64" and c in row.columns and row[c].dtype != np.float64:
            row[c] = usertables.to_numbers(row[c])[0]
    return row


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class AtomicParquetWriter:
    """Parquet chunks written through a :class:`features.files.AtomicOutput`: the chunks go to its
    exclusive temporary file beside ``target`` and ``commit()`` renames it into place.

    Opening takes the target's lock, so a second run writing the same target is refused (an
    :class:`~features.errors.OutputError`) before it does any work. If the process dies or
    ``abort()`` is called, the target path is untouched (the temporary file is removed on abort;
    after kill -9 a ``.<name>.*.tmp`` file may remain beside it, never at the target)."""

    def __init__(self, target: str | Path):
        self.target = Path(target)
        self._out = AtomicOutput(self.target)
        self.tmp = self._out.open()
        self._writer = None
        self._schema: pa.Schema | None = None

    def _open_writer(self, schema: pa.Schema):
        names = set(schema.names)
        return pq.ParquetWriter(
            self.tmp,
            schema,
            compression="zstd",
            # statistics where a reader filters (ids, dates, PD, score, grade), not on reason texts;
            # no dictionary for the ids, which are unique: both make the write cheaper
            write_statistics=[c for c in (ID_COLUMN, *PASS_THROUGH, "pd", "score", "grade", "row", "reject_code") if c in names] or False,
            use_dictionary=[c for c in schema.names if c != ID_COLUMN] or False,
        )

    def write(self, frame: pd.DataFrame) -> None:
        self.write_table(pa.Table.from_pandas(frame, preserve_index=False))

    def write_table(self, table: pa.Table) -> None:
        try:
            if self._writer is None:
                self._schema = table.schema.remove_metadata()
                self._writer = self._open_writer(self._schema)
            table = table.cast(self._schema) if table.schema.remove_metadata() != self._schema else table
            self._writer.write_table(table)
        except OSError as exc:  # a full or read-only disk: one line naming the target
            raise (disk_error(exc, self.target) or exc) from None

    def commit(self, empty: pd.DataFrame) -> None:
        if self._writer is None:  # nothing written: still produce a valid (empty) file with the columns
            self.write(empty)
        try:
            self._writer.close()
        except OSError as exc:
            self._out.abort()
            raise (disk_error(exc, self.target) or exc) from None
        except BaseException:
            self._out.abort()
            raise
        self._out.commit()

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - best effort on an error path
                pass
        self._out.abort()


class AtomicCSVWriter(AtomicParquetWriter):
    """The same chunks and columns as :class:`AtomicParquetWriter`, as CSV (UTF-8, a header line,
    text quoted, ``pyarrow.csv.CSVWriter``): for ``--out scores.csv``."""

    def _open_writer(self, schema: pa.Schema):
        import pyarrow.csv as pacsv

        return pacsv.CSVWriter(self.tmp, schema, write_options=pacsv.WriteOptions(include_header=True))


def chunk_writer(target: str | Path, flag: str = "--out") -> AtomicParquetWriter:
    """The atomic chunk writer of ``target``'s format, decided by its suffix (``.parquet`` or ``.csv``)."""
    fmt = output_format(target, OUTPUT_SUFFIXES, flag)
    return AtomicCSVWriter(target) if fmt == "csv" else AtomicParquetWriter(target)


def rejects_path(out: str | Path, rejects: str | Path | None = None) -> Path:
    """The rejects file of a run: ``rejects`` when given, else ``<out stem>.rejects<out suffix>``
    beside ``out`` (``scores.csv`` -> ``scores.rejects.csv``)."""
    out = Path(out)
    return Path(rejects) if rejects else out.with_name(f"{out.stem}.rejects{out.suffix}")


def check_score_outputs(out: str | Path, rejects: str | Path | None, inputs=()) -> tuple[Path, Path]:
    """The output-path rule (:func:`features.files.check_outputs`) for a scoring run: ``--out`` and
    ``--rejects`` are Parquet or CSV files, neither is an input of the run (``inputs``), nor the
    other output. Returns ``(out, rejects)`` with the default rejects path filled in."""
    out = Path(out)
    rej = rejects_path(out, rejects)
    check_outputs({"--out": out, "--rejects": rej}, inputs, suffixes={"--out": OUTPUT_SUFFIXES, "--rejects": OUTPUT_SUFFIXES})
    return out, rej


class ScoreOutputs:
    """The scores and rejects writers of one run, opened together: both locks are taken (and the
    temporary files created) at once, so a concurrent run on either target is refused before any
    work. ``scores`` writes on a background thread (:class:`WriteBehind`)."""

    def __init__(self, out: Path, rejects: Path):
        writer = chunk_writer(out)
        try:
            self.rejects = chunk_writer(rejects, "--rejects")
        except BaseException:
            writer.abort()
            raise
        self.scores = WriteBehind(writer)

    def commit(self, empty_scores: pd.DataFrame, empty_rejects: pd.DataFrame) -> None:
        try:
            self.scores.commit(empty_scores)
        except BaseException:
            self.rejects.abort()
            raise
        self.rejects.commit(empty_rejects)

    def abort(self) -> None:
        self.scores.abort()
        self.rejects.abort()


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _progress(total: int | None, enabled: bool, desc: str = "scoring"):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="rows", unit_scale=True, desc=desc, file=sys.stderr)


def _empty_scores(credit_model, columns: list[str]) -> pd.DataFrame:
    """The scores file's columns with no rows (a model cannot predict on zero rows)."""
    from riskmodel.creditmodel import output_columns

    keep = [c for c in (ID_COLUMN, *PASS_THROUGH) if c in columns or c == ID_COLUMN]
    names = [*keep, *output_columns(credit_model.n_reasons), "model_name", "model_version"]
    dtypes = {"pd": "float64", "score": "float64", "application_date": "datetime64[ns]"}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "string")) for c in names})


def empty_rejects() -> pd.DataFrame:
    """The rejects file's columns with no rows."""
    return pd.DataFrame({ID_COLUMN: pd.Series(dtype="string"), "row": pd.Series(dtype="int64"), "reject_code": pd.Series(dtype="string"), "reject_reason": pd.Series(dtype="string")})


def _constant(value: str, n: int) -> pa.DictionaryArray:
    """A column holding one string n times, dictionary-encoded (no n Python strings)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], type=pa.string()))


def _scores_table(ids: pa.Array, clean: pd.DataFrame, scores: pd.DataFrame, model_name: str, model_version: str) -> pa.Table:
    """One chunk of the scores file, built column by column in Arrow: the id (the Arrow array from
    validation), the pass-through columns, the predictions (categoricals become dictionary
    columns), and the model name and version."""
    columns = {ID_COLUMN: ids}
    for c in PASS_THROUGH:
        if c in clean.columns:
            columns[c] = pa.array(clean[c], from_pandas=True)
    for c in scores.columns:
        columns[c] = pa.array(scores[c])
    columns["model_name"] = _constant(model_name, len(scores))
    columns["model_version"] = _constant(model_version, len(scores))
    return pa.table(columns)


def _validated(
    chunks: Iterator[pd.DataFrame], spec: dict, first: bool, source: str, found: dict, duplicates: DuplicateRows | None = None
) -> Iterator[tuple[int, ValidationResult]]:
    """Validate each chunk (stage one of the pipeline); ``found["extra"]`` gets the extra columns
    when the first chunk shows them (``first``). Duplicate ids come from ``duplicates`` when a first
    pass found them, else from an :class:`~riskmodel.ids.IdLedger` of the ids seen."""
    required = spec["numeric"] + spec["categorical"]
    seen = IdLedger() if duplicates is None else None
    offset = 0
    for chunk in chunks:
        if first:
            found["extra"] = check_columns(list(chunk.columns), required, source)
            first = False
        if duplicates is not None and offset + len(chunk) > duplicates.n_rows:
            raise ScoringError(f"{source}: the input changed while it was read: more than the {duplicates.n_rows} rows its first pass saw")
        repeated = None if duplicates is None else duplicates.mask(offset, len(chunk))
        yield len(chunk), validate_chunk(chunk, spec["numeric"], spec["categorical"], spec["lower_bounds"], seen, offset, repeated)
        offset += len(chunk)
    if duplicates is not None and offset != duplicates.n_rows:
        raise ScoringError(f"{source}: the input changed while it was read: {offset} rows, its first pass saw {duplicates.n_rows}")


_END = object()


def in_background(items: Iterator, depth: int = 2, name: str = "riskmodel-read") -> Iterator:
    """Run an iterator on a background thread, at most ``depth`` items ahead of the consumer.

    Its items arrive in order and its exceptions are raised here, with their tracebacks. Arrow
    reads, decompresses and hashes without holding the GIL, so reading and validating the next
    chunk overlaps the model scoring this one. Stopping early (an error, Ctrl-C) tells the thread to
    stop at its next item.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((_END, exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class WriteBehind:
    """An :class:`AtomicParquetWriter` whose writes run on a background thread, at most ``depth``
    tables queued (Arrow encodes and compresses without holding the GIL). A write error is raised
    at the next ``write_table``, or at ``commit``."""

    def __init__(self, writer: AtomicParquetWriter, depth: int = 2):
        self.writer = writer
        self._box: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="riskmodel-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            table = self._box.get()
            if table is None:
                return
            if self._error is None:
                try:
                    self.writer.write_table(table)
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write_table(self, table: pa.Table) -> None:
        self._raise()
        self._box.put(table)

    def _drain(self) -> None:
        if self._thread.is_alive():
            self._box.put(None)
            self._thread.join()

    def commit(self, empty: pd.DataFrame) -> None:
        self._drain()
        self._raise()
        self.writer.commit(empty)

    def abort(self) -> None:
        self._drain()
        self.writer.abort()


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
    duplicates: DuplicateRows | None = None,
    outputs: ScoreOutputs | None = None,
    predict: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> ScoreSummary:
    """Validate and score a stream of feature chunks with ``credit_model`` (a :class:`CreditModel`).

    Writes scores to ``out`` and rejects to ``rejects_out`` (default: ``<out stem>.rejects<suffix>``),
    both atomically, each in the format of its suffix (Parquet or CSV, the same columns). Returns the
    counts. ``outputs``: the writers when the caller opened them already (:func:`score` does, to
    take the output locks before any work); they are committed or aborted here. ``columns`` (the input's column names, when known before
    reading, e.g. from a Parquet schema) lets a file with a header and no rows give empty outputs.
    ``duplicates``: the duplicate rows when a first pass over the ids found them
    (:func:`find_duplicate_rows`); without it, the ids seen are kept in memory as the chunks pass.
    ``predict``: what scores the clean rows of a chunk (the model's feature columns) into the
    columns of ``CreditModel.predict``; default the model itself, or the model's exported SQL in
    DuckDB (:class:`riskmodel.sql.DuckDBScorer`).

    Three stages overlap, each chunk passing through them in order: a background thread reads and
    validates the next chunk (:func:`in_background`), this thread scores the current one, and a
    second background thread writes the previous one (:class:`WriteBehind`). At most two chunks
    wait between stages, so the chunks in memory do not grow with the input size.
    """
    if outputs is None:
        out, rejects_out = check_score_outputs(out, rejects_out)
        outputs = ScoreOutputs(out, rejects_out)
    else:
        out, rejects_out = Path(out), rejects_path(out, rejects_out)
    spec = credit_model.input_spec()
    required = spec["numeric"] + spec["categorical"]

    summary = ScoreSummary(model_name=model_name, model_version=model_version, output=str(out), rejects=str(rejects_out))
    first = columns is None
    found: dict = {}
    writer, rwriter = outputs.scores, outputs.rejects
    bar = None
    grade_counts: dict[str, int] = {}
    pd_sum = 0.0
    empty_scores: pd.DataFrame | None = None
    try:
        if columns is not None:
            summary.extra_columns = check_columns(columns, required, source)
        bar = _progress(total_rows, progress)
        for n, res in in_background(_validated(chunks, spec, first, source, found, duplicates)):
            summary.rows_in += n
            if len(res.rejects):
                rwriter.write(res.rejects)
                for code, k in res.rejects["reject_code"].value_counts().items():
                    summary.rejects_by_reason[str(code)] = summary.rejects_by_reason.get(str(code), 0) + int(k)
                summary.rejected += len(res.rejects)
            clean = res.clean
            if len(clean):  # a chunk whose rows were all rejected has nothing to predict
                if predict is None:
                    scores = credit_model.predict(clean[required], check_input=False)  # validate_chunk checked it
                else:
                    scores = predict(clean[required])
                table = _scores_table(res.ids, clean, scores, model_name, model_version)
                if empty_scores is None:
                    empty_scores = table.slice(0, 0).to_pandas()
                writer.write_table(table)
                summary.scored += len(scores)
                pd_sum += float(scores["pd"].sum())
                for g, k in scores["grade"].value_counts(sort=False).items():
                    if k:
                        grade_counts[str(g)] = grade_counts.get(str(g), 0) + int(k)
            if bar is not None:
                bar.update(n)
            if on_chunk is not None:
                on_chunk(summary.rows_in)
        if "extra" in found:
            summary.extra_columns = found["extra"]
        elif first:
            raise ScoringError(f"{source}: the input has no columns or no data")
        if empty_scores is None:  # no rows at all: empty outputs with the right columns
            empty_scores = _empty_scores(credit_model, columns or [])
        outputs.commit(empty_scores, empty_rejects())
    except BaseException:
        outputs.abort()
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
    engine: str = "pandas",
) -> ScoreSummary:
    """Score a feature file (``features``) or a data directory (``data``: features are built
    point-in-time for its applications, or for every firm as of ``as_of``) with an MLflow model URI.

    ``engine``: ``pandas`` scores with the model itself; ``duckdb`` with its exported SQL in DuckDB
    (:class:`riskmodel.sql.DuckDBScorer`; scorecard, gbm_additive and financial_baseline). Either way
    the rows are read and checked here, so the outputs, rejects and summary are the same.

    ``out`` and ``rejects`` (default ``<out stem>.rejects<suffix>``) are Parquet or CSV by their
    suffix; see :func:`check_score_outputs` for what is refused before any work."""
    if (features is None) == (data is None):
        raise UserError("give exactly one of --features FILE or --data DIR")
    if as_of is not None and features is not None:
        raise UserError("--as-of applies to --data only: a --features file already holds its rows' dates; build the matrix as of a date with `riskmodel features --as-of`")
    if chunk_size < 1:
        raise UserError(f"--chunk-size must be at least 1, got {chunk_size}")
    if engine not in ("pandas", "duckdb"):
        raise UserError(f"unknown scoring engine {engine!r}; use pandas or duckdb (spark: riskmodel.spark.score_spark)")
    # the output-path rule, before any work: never over the input (a feature file or a file of the hub)
    inputs = [Path(features)] if features is not None else hub_paths(data)
    out, rejects = check_score_outputs(out, rejects, inputs)
    columns = total = None
    if features is not None:
        features = Path(features)
        columns = read_columns(features)  # fails early on unreadable input, before the model is loaded
        total = count_rows(features)
    outputs = ScoreOutputs(out, rejects)  # takes both locks: a concurrent run on the same targets is refused now
    predict = None
    try:
        credit_model, name, version, duplicates = _load_model(model_uri, features, columns, chunk_size, out.parent, total, progress)
        if engine == "duckdb":
            from riskmodel.sql import DuckDBScorer

            try:
                predict = DuckDBScorer(credit_model)  # a model that does not export is refused here, before any row is read
            except UserError as exc:
                raise UserError(f"--engine duckdb scores with the model's SQL export: {exc}; use --engine pandas for this model") from None
        if features is not None:
            chunks, source = iter_chunks(features, chunk_size, columns=columns_read(credit_model.input_spec())), str(features)
        else:
            from features.build import build_features
            from features.tables import load_tables

            tables, _ = load_tables(Path(data))
            apps = None if as_of else tables.get("applications")
            matrix = build_features(tables, apps, as_of=as_of)
            if as_of and matrix.empty:
                raise UserError(f"--as-of {as_of}: no firm of {data} is known on that date; choose a date inside the hub's data window")
            chunks, total, source = _frame_chunks(matrix, chunk_size), len(matrix), str(data)
    except BaseException:
        outputs.abort()
        raise
    try:
        summary = score_frames(
            credit_model,
            chunks,
            out,
            rejects,
            model_name=name,
            model_version=version,
            source=source,
            total_rows=total,
            progress=progress,
            columns=columns,
            duplicates=duplicates,
            outputs=outputs,
            predict=predict,
        )
    finally:
        if predict is not None:
            predict.close()
    summary.model_uri = model_uri
    return summary


def _load_model(model_uri: str, features: Path | None, columns: list[str] | None, chunk_size: int, work: Path, total: int | None, progress: bool):
    """Load the model; for a feature file with ids, run the first pass over them (duplicates) while
    it loads (Arrow reads without the GIL). Returns ``(credit_model, name, version, duplicates)``."""
    from riskmodel import tracking

    if features is None or ID_COLUMN not in columns:
        return (*tracking.load_credit_model(model_uri), None)
    stop = threading.Event()
    bar = _progress(total, progress, "checking ids")
    with ThreadPoolExecutor(1, thread_name_prefix="riskmodel-ids") as pool:
        first_pass = pool.submit(find_duplicate_rows, features, chunk_size, work, stop, bar.update if bar is not None else None)
        try:
            loaded = tracking.load_credit_model(model_uri)
            return (*loaded, first_pass.result())
        except BaseException:
            stop.set()  # the batch cannot go on: stop the first pass at its next chunk
            raise
        finally:
            if bar is not None:
                bar.close()
