"""Reading a user's table: one reader, one set of rules, for every file a user hands riskmodel.

Used by scoring and explain (feature files), monitoring (a batch and earlier scores), bring-your-own
training (train and test tables) and npl-tolerance (scores). A table is Parquet, or CSV when its
name ends in ``.csv``. The rules:

* **Column names** are unique: a Parquet file or CSV header that names a column twice is refused
  (which of the two would be meant?). A CSV header of one column holding ``;`` is refused with a hint
  (riskmodel reads comma-separated files).
* **Missing values.** A missing value is a null in Parquet, an empty CSV field, or a text value
  equal to one of :data:`NA_TOKENS` after trimming spaces (case as written). The same list applies to
  CSV fields and to Parquet text values, in every column (ids included, so an id ``"NA"`` is a
  missing id everywhere).
* **Strict CSV.** A CSV record with more or fewer fields than the header (an unquoted thousands
  separator, ``1,234.5``, adds one) is never shifted into other columns. :func:`iter_chunks`
  keeps its place as an empty row carrying the reason in :data:`ROW_ERROR` (scoring rejects it,
  with its row number); :func:`read_frame` refuses the file naming the first such record, or drops
  those rows and reports them (``malformed="drop"``). Quoted fields may hold commas and line breaks.
* **One type per column for the whole file.** CSV fields are read as text, never guessed per chunk;
  the consumer converts each column once, by one rule: scoring by the model's input spec (a numeric
  feature's text must be a number, :func:`to_numbers`), training by :func:`infer_column` over the
  whole column.
* **Numeric text.** ``"1,200"``, ``"3.5%"``, ``" 42 "``, ``"¥1,000"``, ``"-8.0 元"`` are numbers
  (:func:`parse_numeric_text`; a percentage is divided by 100). Zero-padded codes (``"007"``) are
  not: they are text.

CSV files must be UTF-8 (a byte-order mark is fine); only the columns a caller asks for are decoded.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from riskmodel.errors import UserError

#: text values that mean "missing", compared after trimming spaces, case as written: pandas'
#: read_csv list without its oddities (``-1.#IND``, ...). Lower-case ``none`` is a value, not a
#: missing one (German credit's ``telephone`` column is ``none`` or ``yes``).
NA_TOKENS: tuple[str, ...] = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A", "<NA>")
_NA_SET = pa.array(NA_TOKENS)
#: the column :func:`iter_chunks` adds to CSV chunks: null, or why the record could not be read
ROW_ERROR = "_riskmodel_row_error"
#: a text column is numeric when at least this share of its non-missing values parse as numbers
NUMERIC_TEXT_SHARE = 0.95

ErrorType = type[UserError]


# --------------------------------------------------------------------------------------------
# The file and its columns
# --------------------------------------------------------------------------------------------


def is_csv(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".csv"


def check_file(path: str | Path, error: ErrorType = UserError, what: str = "") -> Path:
    """``path`` as a Path when it is a non-empty file, else ``error`` saying what is wrong."""
    path = Path(path)
    label = f"{what} {path}".strip()
    if not path.exists():
        raise error(f"{label}: no such file")
    if path.is_dir():
        raise error(f"{label}: path is a directory, expected a Parquet (or CSV) file")
    if path.stat().st_size == 0:
        raise error(f"{label}: the file is empty (0 bytes)")
    return path


def _unique_names(names: Sequence[str], label: str, error: ErrorType) -> list[str]:
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    dup = [n for n, k in seen.items() if k > 1]
    if dup:
        shown = ", ".join(f"{n!r} ({seen[n]} times)" for n in dup[:5])
        raise error(f"{label}: column name(s) {shown} appear more than once; give each column its own name")
    return list(names)


def _header_bytes(path: Path, limit: int = 1 << 20) -> bytes:
    """The bytes of a CSV file's first record (a line break inside quotes does not end it): only
    the header is decoded here, so text in other rows never fails this read."""
    with open(path, "rb") as fh:
        data = fh.read(limit)
    end = 0
    while True:
        nl = data.find(b"\n", end)
        if nl < 0:
            return data
        if data[: nl + 1].count(b'"') % 2 == 0:
            return data[: nl + 1]
        end = nl + 1


def _csv_header(path: Path, label: str, error: ErrorType) -> list[str]:
    raw = _header_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-export the CSV as UTF-8") from None
    try:
        header = next(csv.reader(text.splitlines(keepends=True) or [""]), None)
    except csv.Error as exc:
        raise error(f"{label}: cannot parse the CSV header ({exc})") from None
    if not header or not any(h.strip() for h in header):
        raise error(f"{label}: the CSV file has no header and no rows")
    if len(header) == 1 and ";" in header[0]:
        raise error(f"{label}: the header is one column holding ';' ({header[0][:60]!r}); riskmodel reads comma-separated files: re-export with ',' as the separator and '.' as the decimal point")
    return header


def read_columns(path: str | Path, error: ErrorType = UserError, what: str = "") -> list[str]:
    """Column names of a Parquet or CSV file, with one clear error when it cannot be read or names a
    column twice."""
    path = check_file(path, error, what)
    label = f"{what} {path}".strip()
    if is_csv(path):
        names = _csv_header(path, label, error)
    else:
        try:
            names = list(pq.read_schema(path).names)
        except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
            raise error(f"{label}: not a readable Parquet file ({str(exc).splitlines()[0][:120]}); pass a .parquet file or a .csv") from None
    return _unique_names(names, label, error)


def count_rows(path: str | Path) -> int | None:
    """Rows in a Parquet file from its footer (None for CSV: unknown without reading it)."""
    if is_csv(path):
        return None
    return pq.ParquetFile(path).metadata.num_rows


# --------------------------------------------------------------------------------------------
# Missing values and numbers in text
# --------------------------------------------------------------------------------------------


def _na_mask(arr: pa.Array) -> pa.Array | None:
    """True where a text value is an NA token (None when there is none: the common case)."""
    hit = pc.is_in(pc.ascii_trim_whitespace(arr), value_set=_NA_SET)
    return hit if pc.any(hit).as_py() else None


def normalize_missing(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A text (or dictionary-of-text) array with its :data:`NA_TOKENS` values turned into nulls;
    other arrays unchanged. Cheap when there is nothing to change (no copy)."""
    if isinstance(arr, pa.ChunkedArray):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_dictionary(arr.type)):
            return arr
        return pa.chunked_array([normalize_missing(c) for c in arr.chunks], type=arr.type)
    t = arr.type
    if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        if _na_mask(arr.dictionary) is None:
            return arr
        return normalize_missing(arr.cast(t.value_type))
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return arr
    hit = _na_mask(arr)
    if hit is None:
        return arr
    return pc.if_else(hit, pa.scalar(None, type=t), arr)


def normalize_table(table: pa.Table) -> pa.Table:
    """:func:`normalize_missing` on every text column of ``table``."""
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        new = normalize_missing(col)
        if new is not col:
            table = table.set_column(i, name, new)
    return table


_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMERIC_TEXT = re.compile(
    rf"^\s*(?P<s1>[-+])?\s*(?P<cur>[¥￥$€£]|CNY|RMB|USD)?\s*(?P<s2>[-+])?\s*(?P<num>{_NUMBER})\s*(?P<pct>%)?\s*(?:元|万元|yuan)?\s*$",
    re.IGNORECASE,
)
_CODE = re.compile(r"^\s*0\d")  # zero-padded codes ("007", "0101") are identifiers, not numbers


@dataclass
class NumericText:
    """What :func:`parse_numeric_text` found in a text column."""

    values: np.ndarray  # float64, NaN where missing or not a number
    parsed: np.ndarray  # bool: a non-missing value read as a number
    unparsed: np.ndarray  # bool: a non-missing value that is not a number
    forms: list[str] = field(default_factory=list)  # "thousands separators", "percent", ...
    codes: int = 0  # values that look like zero-padded codes

    def examples(self, raw: pd.Series, k: int = 3) -> list[str]:
        return [str(v)[:40] for v in pd.unique(raw[self.unparsed])[:k]]


def parse_numeric_text(raw: pd.Series) -> NumericText:
    """Numbers written as text: plain numbers with surrounding spaces, thousands separators
    (``1,200``), a currency sign or code (``¥``, ``$``, ``CNY``, ...), a trailing ``元``, and
    percentages (``3.5%`` is 0.035). Missing values (null or an NA token) stay missing; values
    that are not numbers are flagged in ``unparsed``. Zero-padded values (``"007"``) count as codes."""
    text = raw.astype("string")
    notna = text.notna().to_numpy(dtype=bool)
    stripped = text.str.strip()
    na_token = stripped.isin(NA_TOKENS).fillna(False).to_numpy(dtype=bool)
    present = notna & ~na_token
    values = np.full(len(raw), np.nan)
    parsed = np.zeros(len(raw), dtype=bool)
    forms: list[str] = []
    if present.any():
        uniq = pd.Series(pd.unique(stripped[present]), dtype="string")
        m = uniq.str.extract(_NUMERIC_TEXT)
        ok = m["num"].notna().to_numpy(dtype=bool)
        num = pd.to_numeric(m["num"].str.replace(",", "", regex=False), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        neg = (m["s1"] == "-").fillna(False).to_numpy(dtype=bool) ^ (m["s2"] == "-").fillna(False).to_numpy(dtype=bool)
        pct = m["pct"].notna().to_numpy(dtype=bool)
        val = np.where(neg, -num, num)
        val = np.where(pct, val / 100.0, val)
        lookup = pd.Series(np.where(ok, val, np.nan), index=uniq.array)
        good = pd.Series(ok, index=uniq.array)
        values[present] = lookup.reindex(stripped[present].array).to_numpy(dtype="float64")
        parsed[present] = good.reindex(stripped[present].array).to_numpy(dtype=bool)
        if ok.any():
            n_ok = m[ok]
            if n_ok["num"].str.contains(",", regex=False).any():
                forms.append("thousands separators")
            if n_ok["pct"].notna().any():
                forms.append("percent (divided by 100)")
            if n_ok["cur"].notna().any():
                forms.append("currency sign")
            if (uniq[ok] != uniq[ok].str.strip()).any() or (text[present] != stripped[present]).any():
                forms.append("surrounding spaces")
    codes = int(stripped[present & parsed].str.match(_CODE).fillna(False).sum()) if parsed.any() else 0
    return NumericText(values, parsed, present & ~parsed, forms, codes)


def to_numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """A column as float64 (a view when it already is one) and, for text, the mask of non-missing
    values that are not numbers (None when there can be none). Numeric text is parsed
    (:func:`parse_numeric_text`), the same way bring-your-own training parsed it."""
    if raw.dtype == np.float64:
        return raw.to_numpy(), None
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
        return raw.to_numpy(dtype="float64", na_value=np.nan), None
    # the fast path: Arrow parses plain numbers ("1.5", "1e3", "inf"); anything else falls back
    try:
        arr = pa.array(raw, from_pandas=True)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_null(arr.type):
            values = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
            return values.astype("float64", copy=False), np.zeros(len(raw), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    plain = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
    bad = raw.notna().to_numpy(dtype=bool) & np.isnan(plain)
    if bad.any():
        rest = parse_numeric_text(raw[bad])
        fill = plain[bad]
        fill[rest.parsed] = rest.values[rest.parsed]
        plain[bad] = fill
        bad_rows = np.flatnonzero(bad)
        bad[bad_rows[rest.parsed]] = False
        na = ~(rest.parsed | rest.unparsed)  # an NA token: missing, not an error
        bad[bad_rows[na]] = False
    return plain, bad


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _arrow_error(exc: Exception, path: Path, label: str, error: ErrorType) -> UserError:
    text = " ".join(str(exc).split())
    if "utf8" in text.lower() or "utf-8" in text.lower():
        return error(f"{label}: not UTF-8 text ({text[:120]}); re-export the CSV as UTF-8")
    if is_csv(path):
        return error(f"{label}: cannot parse CSV ({text[:160]})")
    return error(f"{label}: cannot read Parquet data ({text[:160]})")


@dataclass
class _Bad:
    pos: int  # 0-based data row (record number - 2: the header is record 1)
    reason: str


def _bad_reason(number: int, expected: int, actual: int, text: str | None) -> str:
    hint = " (an unquoted comma inside a value, such as the thousands separator in 1,234.5?)" if actual > expected else ""
    shown = f": {text[:60]!r}" if text else ""
    return f"CSV record {number} (the header is record 1) has {actual} fields, the header {expected}{hint}{shown}"


def _csv_tables(path: Path, columns: list[str] | None, label: str, error: ErrorType) -> Iterator[pa.Table]:
    """Arrow tables of a CSV file, text columns only, malformed records kept in place as empty
    rows with :data:`ROW_ERROR` set."""
    names = read_columns(path, error)
    include = names if columns is None else [c for c in names if c in set(columns)]
    pending: list[_Bad] = []

    def handler(row) -> str:
        if row.number < 0:  # pragma: no cover - only with multithreaded parsing, which we do not use
            raise error(f"{label}: a CSV record has {row.actual_columns} fields, the header has {row.expected_columns}")
        pending.append(_Bad(row.number - 2, _bad_reason(row.number, row.expected_columns, row.actual_columns, row.text)))
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 22),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=handler),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in include}, include_columns=include,
                strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise _arrow_error(exc, path, label, error) from None
    schema = pa.schema([(c, pa.string()) for c in include] + [(ROW_ERROR, pa.string())])
    next_pos = 0

    def merged(good: pa.Table, final: bool) -> pa.Table:
        nonlocal next_pos
        n = good.num_rows
        pending.sort(key=lambda b: b.pos)
        take: list[_Bad] = []
        while pending and (final or pending[0].pos < next_pos + n + len(take)):
            take.append(pending.pop(0))
        good = good.append_column(ROW_ERROR, pa.nulls(n, pa.string())) if ROW_ERROR not in good.column_names else good
        if not take:
            next_pos += n
            return good
        total = n + len(take)
        is_bad = np.zeros(total, dtype=bool)
        is_bad[[b.pos - next_pos for b in take]] = True
        bad = pa.table({**{c: pa.nulls(len(take), pa.string()) for c in include}, ROW_ERROR: pa.array([b.reason for b in take], pa.string())}, schema=schema)
        both = pa.concat_tables([good.select(schema.names).cast(schema), bad])
        order = np.empty(total, dtype=np.int64)
        order[~is_bad] = np.arange(n)
        order[is_bad] = n + np.arange(len(take))
        next_pos += total
        return both.take(pa.array(order))

    try:
        for batch in reader:
            yield normalize_table(merged(pa.Table.from_batches([batch]), False))
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise _arrow_error(exc, path, label, error) from None
    if pending:
        yield merged(pa.table({c: pa.array([], pa.string()) for c in include}), True)


def _parquet_tables(path: Path, columns: list[str] | None, chunk_size: int, label: str, error: ErrorType,
                    row_groups: Sequence[int] | None = None) -> Iterator[pa.Table]:
    names = read_columns(path, error)
    try:
        pf = pq.ParquetFile(path, pre_buffer=False)
        if columns is not None:
            columns = [c for c in names if c in set(columns)]
        for batch in pf.iter_batches(batch_size=chunk_size, columns=columns, row_groups=row_groups):
            yield normalize_table(pa.Table.from_batches([batch]))
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise _arrow_error(exc, path, label, error) from None


def _rechunk(tables: Iterator[pa.Table], chunk_size: int) -> Iterator[pa.Table]:
    buf: list[pa.Table] = []
    rows = 0
    for t in tables:
        if t.num_rows == 0:
            continue
        buf.append(t)
        rows += t.num_rows
        while rows >= chunk_size:
            whole = pa.concat_tables(buf) if len(buf) > 1 else buf[0]
            yield whole.slice(0, chunk_size)
            rest = whole.slice(chunk_size)
            buf, rows = ([rest] if rest.num_rows else []), rest.num_rows
    if rows:
        yield pa.concat_tables(buf) if len(buf) > 1 else buf[0]


def iter_chunks(path: str | Path, chunk_size: int, columns: Sequence[str] | None = None, *, error: ErrorType = UserError,
                row_groups: Sequence[int] | None = None) -> Iterator[pd.DataFrame]:
    """The table in DataFrames of at most ``chunk_size`` rows, in file order.

    ``columns``: read only these (those present). ``row_groups``: of a Parquet file, read only these
    (a Spark task reads its share so; refused for a CSV). Parquet batches become frames with one block per
    column (``split_blocks``), so float columns without missing values are not copied. The Parquet
    reader does not pre-buffer: with pre-buffering, pyarrow keeps the row groups read until the file
    is closed (apache/arrow#39808). CSV chunks hold text columns and :data:`ROW_ERROR`."""
    path = Path(path)
    label = str(path)
    cols = list(columns) if columns is not None else None
    if is_csv(path):
        if row_groups is not None:
            raise error(f"{label}: a CSV file has no row groups; convert it to Parquet to split it by row group")
        tables = _rechunk(_csv_tables(path, cols, label, error), chunk_size)
        for t in tables:
            yield t.to_pandas(split_blocks=True, types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
        return
    for t in _parquet_tables(path, cols, chunk_size, label, error, row_groups):
        yield t.to_pandas(split_blocks=True)


@dataclass
class Malformed:
    """CSV records that could not be read (wrong number of fields): their 0-based row positions and reasons."""

    rows: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self, k: int = 5) -> dict:
        return {"rows": len(self.rows), "first": [{"row": r, "reason": s} for r, s in zip(self.rows[:k], self.reasons[:k])]}


def read_frame(
    path: str | Path,
    what: str = "",
    *,
    columns: Sequence[str] | None = None,
    error: ErrorType = UserError,
    malformed: str = "raise",
) -> tuple[pd.DataFrame, Malformed]:
    """The whole table as one DataFrame (for tables that fit in memory: a monitoring batch, a
    training table, a scores file) and the malformed CSV records.

    ``malformed="raise"`` refuses a CSV with a record of the wrong number of fields, naming the first;
    ``"drop"`` leaves those rows out and returns them in :class:`Malformed`."""
    path = check_file(path, error, what)
    if not (is_csv(path) or path.suffix.lower() == ".parquet"):
        raise error(f"{what} {path}: must be a .parquet or .csv file".strip())
    label = f"{what} {path}".strip()
    read_columns(path, error, what)
    bad = Malformed()
    if is_csv(path):
        tables = list(_csv_tables(path, list(columns) if columns is not None else None, label, error))
        if not tables:
            names = read_columns(path, error, what)
            keep = names if columns is None else [c for c in names if c in set(columns)]
            return pd.DataFrame({c: pd.Series(dtype="string") for c in keep}), bad
        t = pa.concat_tables(tables)
        errs = t.column(ROW_ERROR)
        mask = pc.is_valid(errs).to_numpy(zero_copy_only=False)
        if mask.any():
            rows = np.flatnonzero(mask)
            reasons = errs.filter(pa.array(mask)).to_pylist()
            if malformed == "raise":
                more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
                raise error(f"{label}: {reasons[0]}{more}; quote values that hold commas, or fix those rows")
            bad = Malformed(rows.tolist(), reasons)
            t = t.filter(pa.array(~mask))
        t = t.drop_columns([ROW_ERROR])
        return t.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get), bad
    tables = list(_parquet_tables(path, list(columns) if columns is not None else None, 1 << 20, label, error))
    if not tables:
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
            raise _arrow_error(exc, path, label, error) from None
        keep = [n for n in schema.names if columns is None or n in set(columns)]
        return schema.empty_table().select(keep).to_pandas(), bad
    return pa.concat_tables(tables).to_pandas(), bad


# --------------------------------------------------------------------------------------------
# Column types for training: decided once per column, over the whole column
# --------------------------------------------------------------------------------------------


@dataclass
class ColumnType:
    """How bring-your-own training reads one column: ``kind`` is ``numeric``, ``numeric_text``
    (text holding numbers), ``categorical`` or ``date``; ``note`` says why, in words."""

    kind: str
    note: str = ""
    forms: list[str] = field(default_factory=list)


def infer_column(raw: pd.Series) -> ColumnType:
    """The type of a training column, decided over the whole column."""
    if pd.api.types.is_bool_dtype(raw):
        return ColumnType("numeric", "true/false read as 1/0")
    if pd.api.types.is_numeric_dtype(raw):
        return ColumnType("numeric")
    if pd.api.types.is_datetime64_any_dtype(raw):
        return ColumnType("date", "a date")
    nt = parse_numeric_text(raw)
    present = int(nt.parsed.sum() + nt.unparsed.sum())
    if present and nt.parsed.sum() >= NUMERIC_TEXT_SHARE * present and nt.codes == 0:
        if not nt.forms:  # plain numbers stored as text (every CSV column is read as text)
            return ColumnType("numeric")
        return ColumnType("numeric_text", f"text holding numbers ({', '.join(nt.forms)}), read as numbers", nt.forms)
    if present and nt.parsed.sum() >= NUMERIC_TEXT_SHARE * present and nt.codes:
        return ColumnType("categorical", f"zero-padded codes ({nt.codes} value(s) such as '007'): kept as text")
    return ColumnType("categorical", "text")


def apply_column(raw: pd.Series, kind: str) -> tuple[pd.Series, int, list[str]]:
    """A column converted as :func:`infer_column` decided: ``(values, coerced, examples)`` where
    ``coerced`` counts non-missing values that became missing (text in a numeric column)."""
    if kind in ("numeric", "numeric_text"):
        if pd.api.types.is_bool_dtype(raw):
            return raw.astype("float64"), 0, []
        if pd.api.types.is_numeric_dtype(raw):
            return raw.astype("float64"), 0, []
        values, bad = to_numbers(raw)
        if bad is None or not bad.any():
            return pd.Series(values, index=raw.index, dtype="float64"), 0, []
        examples = [str(v)[:40] for v in pd.unique(raw[bad])[:3]]
        return pd.Series(values, index=raw.index, dtype="float64"), int(bad.sum()), examples
    text = raw.astype("string")
    return text.astype(object).where(text.notna(), None), 0, []


def typed(frame: pd.DataFrame, text: Sequence[str] = ()) -> pd.DataFrame:
    """``frame`` with each text column converted as :func:`infer_column` decides over the whole
    column (numbers and numeric text as float64; the rest stays text). Columns in ``text`` (ids)
    stay text whatever they hold. For a whole table read from CSV, where every column is text."""
    out = {}
    for c in frame.columns:
        raw = frame[c]
        if c in text or pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
            out[c] = raw
            continue
        kind = infer_column(raw).kind
        out[c] = apply_column(raw, kind)[0] if kind in ("numeric", "numeric_text") else raw
    return pd.DataFrame(out, index=frame.index)


def row_keys(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """A 64-bit hash per row of ``columns`` (for finding identical rows across two tables)."""
    return pd.util.hash_pandas_object(frame[list(columns)].astype("string"), index=False).to_numpy()
