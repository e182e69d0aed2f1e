"""Reading a user's table (riskmodel.usertables): strict CSV, one type per column, one list of
missing-value tokens, unique column names, numbers written as text.

The property tests draw tables and break them the way exported spreadsheets break: an unquoted
thousands separator adds a field to a record, a short record loses some; quoted fields hold commas
and line breaks; chunk boundaries fall anywhere. Whatever is drawn, every record keeps its place,
a malformed record is reported at its own row and never shifted into its neighbours' columns, and
every other value reads back unchanged.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskmodel.errors import ScoringError, UserError
from riskmodel.scoring import validate_chunk
from riskmodel.usertables import NA_TOKENS, ROW_ERROR, infer_column, iter_chunks, parse_numeric_text, read_columns, read_frame

TEXT = st.text(alphabet=st.sampled_from(list("ab ,\"\n1x.é-")), max_size=8)


@st.composite
def broken_csv(draw):
    """A CSV of 3 columns (id, num, note) with some records given an extra or a missing field."""
    n = draw(st.integers(0, 40))
    rows = [[f"A{i}", draw(st.sampled_from(["1.5", "2", "", "-3e2", "7"])), draw(TEXT)] for i in range(n)]
    bad = sorted(draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=min(n, 6)))) if n else []
    kinds = {i: draw(st.sampled_from(["extra", "short"])) for i in bad}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["application_id", "num", "note"])
    for i, r in enumerate(rows):
        if kinds.get(i) == "extra":
            buf.write(f"{r[0]},1,234.5,{r[2].replace(chr(10), ' ').replace(',', ' ').replace(chr(34), ' ')}\n")  # unquoted 1,234.5
        elif kinds.get(i) == "short":
            buf.write(f"{r[0]}\n")
        else:
            w.writerow(r)
    return buf.getvalue(), rows, kinds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=broken_csv(), chunk=st.integers(1, 17))
def test_malformed_records_stay_in_place_and_never_shift(tmp_path, data, chunk):
    text, rows, kinds = data
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    frames = list(iter_chunks(path, chunk))
    assert all(len(f) <= chunk for f in frames)
    got = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["application_id", "num", "note", ROW_ERROR])
    assert len(got) == len(rows)  # one row per record: none lost, none added
    for i, r in enumerate(rows):
        row = got.iloc[i]
        if i in kinds:
            assert pd.notna(row[ROW_ERROR]) and f"record {i + 2} " in row[ROW_ERROR]
            assert pd.isna(row["application_id"]) and pd.isna(row["num"])  # never values shifted from other columns
        else:
            assert pd.isna(row[ROW_ERROR])
            assert row["application_id"] == r[0]
            want = None if r[1].strip() in NA_TOKENS else r[1]
            assert (pd.isna(row["num"]) if want is None else row["num"] == want)
            note = None if r[2].strip() in NA_TOKENS else r[2]
            assert (pd.isna(row["note"]) if note is None else row["note"] == note)
    # the same file read whole: refused at its first malformed record, or dropped and counted
    if kinds:
        with pytest.raises(UserError, match=rf"record {min(kinds) + 2} \(the header is record 1\)"):
            read_frame(path)
        frame, bad = read_frame(path, malformed="drop")
        assert bad.rows == sorted(kinds) and len(frame) == len(rows) - len(kinds)


def test_a_thousands_separator_is_a_row_reject_in_scoring(tmp_path):
    """The issue's case: '1,234.5' unquoted in a numeric feature shifted every later column of its row
    and the row was scored. It is now rejected at its own row, with the reason, and the rest scored."""
    path = tmp_path / "f.csv"
    path.write_text("application_id,x,y\nA1,1.0,2.0\nA2,1,234.5,3.0\nA3,4.0,5.0\n", encoding="utf-8")
    chunk = next(iter_chunks(path, 10))
    res = validate_chunk(chunk, ["x", "y"], [], {}, None, 0)
    assert res.rejects["row"].tolist() == [1] and res.rejects["reject_code"].tolist() == ["MALFORMED_ROW"]
    assert "has 4 fields, the header 3" in res.rejects["reject_reason"].iloc[0] and "thousands separator" in res.rejects["reject_reason"].iloc[0]
    assert res.clean["application_id"].tolist() == ["A1", "A3"] and res.clean["y"].tolist() == [2.0, 5.0]


def test_one_type_per_column_whatever_the_chunk(tmp_path):
    """A date column empty in the first chunk and filled later, an id column numeric first and text
    later: every chunk has the same (text) columns, so nothing fails between chunks."""
    n = 30
    frame = pd.DataFrame({"application_id": [str(i) for i in range(n)], "application_date": [""] * 15 + ["2024-01-03"] * 15, "x": ["1.5"] * n})
    frame.loc[25, "application_id"] = "A-25"
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    chunks = list(iter_chunks(path, 10))
    assert len({tuple(str(t) for t in c.dtypes) for c in chunks}) == 1
    whole = pd.concat(chunks, ignore_index=True)
    assert whole["application_id"].iloc[25] == "A-25" and whole["application_date"].isna().sum() == 15


@pytest.mark.parametrize("token", ["NA", "null", "None", "", "  N/A ", "#N/A", "NaN"])
def test_missing_ids_are_the_same_in_csv_and_parquet(tmp_path, token):
    """An id 'NA' / 'null' / 'None' is a missing id (MISSING_ID), in a CSV as in a Parquet file."""
    frame = pd.DataFrame({"application_id": ["A0", token, "A2"], "x": [1.0, 2.0, 3.0]})
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet", index=False)
    for name in ("f.csv", "f.parquet"):
        chunk = next(iter_chunks(tmp_path / name, 10))
        res = validate_chunk(chunk, ["x"], [], {}, None, 0)
        assert res.rejects["reject_code"].tolist() == ["MISSING_ID"], name
        assert res.rejects["row"].tolist() == [1], name


def test_lower_case_none_is_a_value_not_missing(tmp_path):
    """German credit's telephone column holds 'none' and 'yes': a category, not a missing value."""
    pd.DataFrame({"telephone": ["none", "yes", "none"]}).to_parquet(tmp_path / "f.parquet")
    frame, _ = read_frame(tmp_path / "f.parquet")
    assert frame["telephone"].tolist() == ["none", "yes", "none"]


def test_duplicated_column_names_are_refused(tmp_path):
    t = pa.Table.from_arrays([pa.array(["A1"]), pa.array([1.0]), pa.array([2.0])], names=["application_id", "x", "x"])
    pq.write_table(t, tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("application_id,x,x\nA1,1,2\n", encoding="utf-8")
    for name in ("d.parquet", "d.csv"):
        with pytest.raises(ScoringError, match=r"column name\(s\) 'x' \(2 times\) appear more than once; give each column its own name"):
            read_columns(tmp_path / name, ScoringError)


def test_semicolons_bom_and_quoted_line_breaks(tmp_path):
    (tmp_path / "semi.csv").write_text("application_id;x\nA1;1,5\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"the header is one column holding ';'.*re-export with ','"):
        read_columns(tmp_path / "semi.csv")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfapplication_id,x\nA1,1\n")
    assert read_columns(tmp_path / "bom.csv") == ["application_id", "x"]
    assert next(iter_chunks(tmp_path / "bom.csv", 5))["application_id"].tolist() == ["A1"]
    (tmp_path / "q.csv").write_text('application_id,note,x\nA1,"two\nlines, and a comma",1\nA2,plain,2\n', encoding="utf-8")
    got = next(iter_chunks(tmp_path / "q.csv", 5))
    assert got["note"].tolist() == ["two\nlines, and a comma", "plain"] and got["x"].tolist() == ["1", "2"]


FORMS = st.sampled_from(["plain", "thousands", "percent", "yuan_sign", "yuan_word", "spaces", "negative"])


@settings(max_examples=200, deadline=None)
@given(value=st.integers(0, 10**9), cents=st.integers(0, 99), form=FORMS)
def test_numeric_text_reads_back_the_number(value, cents, form):
    x = value + cents / 100
    text = {
        "plain": f"{x:.2f}", "thousands": f"{x:,.2f}", "percent": f"{x:.2f}%", "yuan_sign": f"¥{x:,.2f}",
        "yuan_word": f"{x:.2f} 元", "spaces": f"  {x:.2f} ", "negative": f"-{x:,.2f}",
    }[form]
    want = {"percent": x / 100, "negative": -x}.get(form, x)
    got = parse_numeric_text(pd.Series([text]))
    assert got.parsed[0] and got.values[0] == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_numeric_text_columns_and_codes():
    assert infer_column(pd.Series(["1,200", "3,400", None, "NA", "15"])).kind == "numeric_text"
    assert infer_column(pd.Series(["3.5%", "1%", "0.2%"])).forms == ["percent (divided by 100)"]
    assert infer_column(pd.Series(["1.5", "2", "3"])).kind == "numeric"  # a CSV's plain numbers
    codes = infer_column(pd.Series(["007", "012", "100"]))
    assert codes.kind == "categorical" and "zero-padded codes" in codes.note
    assert infer_column(pd.Series(["a", "b", "1"])).kind == "categorical"
    # a few stray texts in a numeric column: numeric, the strays counted (see test_byo_checks)
    assert infer_column(pd.Series([str(i) for i in range(40)] + ["n.a."])).kind == "numeric"


def test_json_of_a_frame_with_text_columns_is_plain(tmp_path):
    """A CSV read whole gives text columns a plain JSON encoder can handle (no Arrow scalars)."""
    (tmp_path / "f.csv").write_text("a,b\n1,x\n2,\n", encoding="utf-8")
    frame, _ = read_frame(tmp_path / "f.csv")
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert json.loads(json.dumps(records)) == [{"a": "1", "b": "x"}, {"a": "2", "b": None}]
    assert np.isnan(parse_numeric_text(frame["b"]).values).tolist() == [True, True]
