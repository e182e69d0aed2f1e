"""The parts of Spark scoring that run without Spark (riskmodel/spark.py): how a Parquet file is cut
into task shares, the repeated-id lookup each task does, the summing of the tasks' counts and the
one-line error a failed task becomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskmodel import spark as rs
from riskmodel.errors import ScoringError
from riskmodel.scoring import ID_COLUMN, iter_chunks


def _file(tmp_path, sizes: list[int]):
    """A Parquet file whose row groups hold ``sizes`` rows; column ``n`` is the row number."""
    path = tmp_path / "f.parquet"
    with pq.ParquetWriter(path, pa.schema([("n", pa.int64())])) as w:
        start = 0
        for k in sizes:
            w.write_table(pa.table({"n": np.arange(start, start + k, dtype=np.int64)}))
            start += k
    return path


def _rows_of(path, tasks) -> list[np.ndarray]:
    """The row numbers each share reads (from ``_file_frames``) checked against the file's own."""
    out = []
    for t in tasks:
        got = list(rs._file_frames(str(path), t, ["n"]))
        for frame, rows in got:
            np.testing.assert_array_equal(frame["n"].to_numpy(), rows)
        out.append(np.concatenate([r for _, r in got]) if got else np.array([], dtype=np.int64))
    return out


@pytest.mark.parametrize(
    "sizes, cores, min_rows, batch, n_tasks",
    [
        ([100, 100, 100], 2, 10, 30, 3),  # enough row groups: one task each
        ([1000], 4, 10, 100, 4),  # one row group, four cores: cut into runs of whole batches
        ([1000], 3, 10, 100, 3),  # 10 batches over 3 tasks: 4 + 4 + 2
        ([1000], 8, 400, 100, 3),  # few rows: no more tasks than MIN_TASK_ROWS allows (ceil(1000/400))
        ([50, 0, 70], 8, 10, 20, 5),  # an empty row group is skipped; 3 + 2 runs of whole batches
        ([5], 4, 10, 100, 1),  # fewer batches than cuts
    ],
)
def test_file_shares_cover_every_row_once_in_order(tmp_path, monkeypatch, sizes, cores, min_rows, batch, n_tasks):
    monkeypatch.setattr(rs, "MIN_TASK_ROWS", min_rows)
    path = _file(tmp_path, sizes)
    tasks = rs.file_tasks(pq.ParquetFile(path).metadata, cores, batch)
    assert len(tasks) == n_tasks
    rows = _rows_of(path, tasks)
    np.testing.assert_array_equal(np.concatenate(rows), np.arange(sum(sizes)))  # all rows, once, in file order
    assert all(len(r) for r in rows)


def test_file_without_row_groups_has_no_share(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"n": pa.array([], pa.int64())}), path)
    assert rs.file_tasks(pq.ParquetFile(path).metadata, 2) == []


def test_iter_chunks_reads_the_row_groups_asked_for(tmp_path):
    path = _file(tmp_path, [3, 4, 5])
    got = [c["n"].tolist() for c in iter_chunks(path, 10, row_groups=[1, 2])]
    assert got == [[3, 4, 5, 6, 7, 8, 9, 10, 11]]  # batches run across row groups


def _repeated(ids: list, first: list[int]) -> pa.Table:
    return pa.table({ID_COLUMN: pa.array(ids), rs.FIRST: pa.array(first, pa.int64())})


@pytest.mark.parametrize(
    "ids, rows, repeated, expected",
    [
        (["a", "b", "a", "c", "a"], [0, 1, 2, 3, 4], (["a"], [0]), [False, False, True, False, True]),
        (["a", "b"], [7, 8], (["a"], [3]), [True, False]),  # the first row sits in another task's share
        (["a", "b"], [3, 8], (["a"], [3]), [False, False]),  # this is the first row
        (["a", None, "b"], [0, 1, 2], ([], []), [False, False, False]),  # nothing repeats
        ([5, 6, 5], [0, 1, 2], ([5], [0]), [False, False, True]),  # numeric ids compare as numbers
    ],
)
def test_duplicate_rows_marks_every_row_after_the_first(ids, rows, repeated, expected):
    rep = _repeated(*repeated) if repeated[0] else pa.table({ID_COLUMN: pa.array([], pa.string()), rs.FIRST: pa.array([], pa.int64())})
    series = pd.Series(ids, dtype="str") if isinstance(ids[0], str) else pd.Series(ids)
    assert rs.duplicate_rows(series, np.array(rows), rep).tolist() == expected


def test_duplicate_rows_matches_large_strings_against_spark_strings():
    """pyarrow reads a pandas-written id column as large_string; Spark collects string."""
    ids = pd.Series(pa.array(["x", "y", "x"], pa.large_string()).to_pandas(types_mapper=pd.ArrowDtype))
    assert rs.duplicate_rows(ids, np.arange(3), _repeated(["x"], [0])).tolist() == [False, False, True]


def test_task_counts_add_up():
    total = rs.TaskCounts()
    total.add(rs.TaskCounts(rows_in=5, scored=3, pd_sum=0.3, grade_counts={"R1": 2, "R2": 1}, rejects_by_reason={"NOT_NUMERIC": 2}, scores_files=1, rejects_files=1))
    total.add(rs.TaskCounts(rows_in=4, scored=4, pd_sum=0.5, grade_counts={"R2": 4}, scores_files=1))
    assert (total.rows_in, total.scored, total.scores_files, total.rejects_files) == (9, 7, 2, 1)
    assert total.grade_counts == {"R1": 2, "R2": 5} and total.rejects_by_reason == {"NOT_NUMERIC": 2}
    assert total.pd_sum == pytest.approx(0.8)


class _Failing:
    def __init__(self, text: str):
        self.text = text

    def collect(self):
        raise RuntimeError(self.text)


def test_a_task_error_a_user_can_fix_becomes_one_line():
    trace = "Traceback ...\n  File x\nriskmodel.errors.ScoringError: /data/f.parquet: cannot read Parquet data (IOError)\n\tat org.apache..."
    with pytest.raises(ScoringError, match=r"^/data/f.parquet: cannot read Parquet data \(IOError\)$"):
        rs._collect_counts(_Failing(trace))
    with pytest.raises(RuntimeError, match="something else"):
        rs._collect_counts(_Failing("something else"))
