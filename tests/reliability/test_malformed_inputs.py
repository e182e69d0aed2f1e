"""A table-driven corpus of malformed inputs across the CLI's entry points.

Every case runs ``riskmodel ...`` in-process (``riskmodel.cli.main`` with ``sys.argv`` patched) and
states the expected exit code and a fragment of the one-line message. For every case: no traceback,
an ``error:`` message of one line when the exit code is not 0, nothing written at the output path when
the command fails, and ``rows_in == scored + rejected`` whenever rows are scored.

Entry points: ``features`` (source tables of a data hub), ``score`` (feature files), ``train``
(bring-your-own tables and the directions file), and options/configs (``generate``, ``catalog``,
``score``, ``train`` options). ``CORPUS_SIZE`` is reported in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from features.tables import write_table


@dataclass
class Case:
    id: str
    make: Callable  # builds the input under a tmp dir; returns the CLI args (see each section)
    code: int  # expected exit code
    fragment: str  # regex expected in stderr (error) or stdout (success)
    rows: tuple[int, int, int] | None = None  # (rows_in, scored, rejected) for score cases that run


def check_result(case: Case, code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out, f"{case.id}: traceback\n{err}"
    assert code == case.code, f"{case.id}: exit {code}, expected {case.code}; stderr: {err!r}"
    if case.code != 0:
        # One `error:` line; a table validation error lists its violations on indented lines below it.
        lines = [ln for ln in err.splitlines() if not ln.startswith(("WARNING", "INFO"))]
        assert lines and lines[0].startswith("error: "), f"{case.id}: no error line: {err!r}"
        assert all(ln.startswith("  ") for ln in lines[1:]), f"{case.id}: not one error message: {err!r}"
        assert re.search(case.fragment, " ".join(lines)), f"{case.id}: {case.fragment!r} not in {err!r}"
    else:
        assert re.search(case.fragment, out + err), f"{case.id}: {case.fragment!r} not in {out + err!r}"


# =============================================================================================
# 1. Source tables for `riskmodel features --data DIR --out FILE`
# =============================================================================================


def _table(hub: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(hub / f"{name}.parquet")


def _put(hub: Path, name: str, df: pd.DataFrame) -> None:
    write_table(df, hub / f"{name}.parquet")


def _edit(name: str, fn: Callable[[pd.DataFrame], pd.DataFrame]):
    def make(hub: Path) -> None:
        _put(hub, name, fn(_table(hub, name)))

    return make


def _set(df: pd.DataFrame, col: str, row: int, value, as_type=None) -> pd.DataFrame:
    df = df.copy()
    if as_type is not None:
        df[col] = df[col].astype(as_type)
    df.loc[row, col] = value
    return df


def _zero_bytes(name):
    return lambda hub: (hub / f"{name}.parquet").write_bytes(b"")


def _truncated(name):
    def make(hub):
        p = hub / f"{name}.parquet"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    return make


def _as_directory(name):
    def make(hub):
        (hub / f"{name}.parquet").unlink()
        (hub / f"{name}.parquet").mkdir()

    return make


def _future_application(df):
    df = df.copy()
    df.loc[0, "application_date"] = pd.Timestamp("2031-06-01")
    df.loc[0, "available_date"] = pd.Timestamp("2031-06-01")
    return df


def _expiry_before_issue(df):
    df = df.copy()
    df.loc[0, "expiry_date"] = df.loc[0, "issue_date"] - pd.Timedelta(days=30)
    return df


def _available_before_month(df):
    df = df.copy()
    df.loc[3, "available_date"] = df.loc[3, "month"] - pd.Timedelta(days=1)
    return df


def _mixed_kwh(df):
    df = df.copy()
    df["kwh"] = df["kwh"].map(lambda v: f"{v:.1f}").astype(object)
    df.loc[[2, 9], "kwh"] = ["n/a", "12,5 kWh"]
    return df


FEATURES = [
    Case("missing-column", _edit("firms", lambda d: d.drop(columns=["industry"])), 2, r"firms.parquet.*industry.*required column is missing"),
    Case("wrong-dtype-date-as-int", _edit("firms", lambda d: d.assign(founding_date=np.arange(len(d)))), 2, r"founding_date.*cannot be read as date"),
    Case("wrong-dtype-text-in-float", _edit("financials", lambda d: d.assign(revenue=d["revenue"].map(lambda v: f"{v:.0f} CNY"))), 2, r"financials.parquet.*revenue.*cannot be read as float"),
    Case("mixed-types", _edit("electricity", _mixed_kwh), 2, r"electricity.parquet.*kwh.*cannot be read as float.*n/a"),
    Case("null-key", _edit("firms", lambda d: _set(d, "firm_id", 4, None)), 2, r"firm_id.*null value in a non-nullable column"),
    Case("infinite", _edit("electricity", lambda d: _set(d, "kwh", 5, np.inf)), 2, r"kwh.*infinite value"),
    Case("negative-amount", _edit("financials", lambda d: _set(d, "revenue", 0, -5.0)), 2, r"revenue.*below the allowed minimum 0"),
    Case("absurd-magnitude", _edit("firms", lambda d: _set(d, "registered_capital", 1, 1e15)), 2, r"registered_capital.*above the allowed maximum"),
    Case("share-above-one", _edit("invoices", lambda d: _set(d, "top_customer_share", 0, 3.5)), 2, r"top_customer_share.*above the allowed maximum 1"),
    Case("duplicate-key", _edit("firms", lambda d: pd.concat([d, d.head(2)], ignore_index=True)), 2, r"duplicate key \(firm_id\)"),
    Case("known-before-the-event", _edit("electricity", _available_before_month), 2, r"available_date before month \+ 1 month"),
    Case("future-date", _edit("applications", _future_application), 2, r"application_date.*date after the end of the dataset"),
    Case("dates-out-of-order", _edit("certifications", _expiry_before_issue), 2, r"expiry_date not after issue_date"),
    Case("unknown-category", _edit("firms", lambda d: _set(d, "industry", 0, "crypto_mining", as_type=str)), 2, r"industry.*unknown category"),
    Case("huge-string", _edit("applications", lambda d: _set(d, "product", 0, "x" * 100_000, as_type=str)), 2, r"product.*unknown category"),
    Case("huge-string-id", _edit("patents", lambda d: _set(d, "patent_id", 0, "P" * 100_000)), 2, r"patent_id.*text longer than 200"),
    Case("zero-byte-table", _zero_bytes("bills"), 2, r"bills.parquet.*file is empty \(0 bytes\)"),
    Case("truncated-parquet", _truncated("invoices"), 2, r"invoices.parquet.*not a readable Parquet file"),
    Case("table-is-a-directory", _as_directory("talent"), 2, r"talent.parquet.*path is a directory"),
    Case("required-table-missing", lambda hub: (hub / "applications.parquet").unlink(), 2, r"required table 'applications' is missing"),
    Case("empty-applications", _edit("applications", lambda d: d.head(0)), 0, r"wrote .*: 0 rows"),
    Case("extra-column-warned", _edit("bids", lambda d: d.assign(internal_note="x")), 0, r"1 warnings"),
    Case("optional-table-missing", lambda hub: (hub / "talent.parquet").unlink(), 0, r"missing tables: talent"),
]


@pytest.fixture
def hub(small_hub, tmp_path) -> Path:
    dst = tmp_path / "hub"
    shutil.copytree(small_hub, dst, ignore=shutil.ignore_patterns("cache"))
    return dst


@pytest.mark.parametrize("case", FEATURES, ids=[c.id for c in FEATURES])
def test_features_source_tables(cli, case, hub, tmp_path):
    case.make(hub)
    out = tmp_path / "features.parquet"
    code, stdout, err = cli("features", "--data", hub, "--out", out)
    check_result(case, code, stdout, err)
    assert out.exists() == (case.code == 0), case.id
    assert not list(tmp_path.glob("*.tmp"))


def test_features_reject_mode_drops_and_counts_rows(cli, hub, tmp_path):
    """--errors reject: the same bad rows are dropped and counted instead of stopping the build."""
    _put(hub, "electricity", _set(_table(hub, "electricity"), "kwh", 5, np.inf))
    _put(hub, "financials", _set(_table(hub, "financials"), "revenue", 0, -5.0))
    code, out, err = cli("features", "--data", hub, "--out", tmp_path / "f.parquet", "--errors", "reject", "--json")
    assert code == 0 and "Traceback" not in err, err
    summary = json.loads(out)
    assert summary["rows_rejected"] == {"electricity": 1, "financials": 1}


# =============================================================================================
# 2. Feature files for `riskmodel score --features FILE --out FILE`
#    (tests/model/test_scoring.py covers the library-level cases; here: through the CLI, exit codes)
# =============================================================================================

NUM = "firm_size_headcount"  # a numeric feature the champion scorecard uses and that cannot be negative


def _parquet(fn):
    def make(m: pd.DataFrame, d: Path) -> Path:
        p = d / "in.parquet"
        fn(m.head(60).copy()).to_parquet(p, index=False)
        return p

    return make


def _csv_gbk(column: str):
    def make(m, d):
        p = d / "in.csv"
        head = m.head(20).copy()
        head[column] = "集成电路" + head[column].astype(str)  # GBK bytes are not valid UTF-8
        p.write_bytes(head.to_csv(index=False).encode("gbk"))
        return p

    return make


def _raw(name: str, data: bytes):
    def make(m, d):
        p = d / name
        p.write_bytes(data)
        return p

    return make


def _header_only_csv(m, d):
    p = d / "in.csv"
    p.write_text(",".join(m.columns) + "\n", encoding="utf-8")
    return p


def _mixed_csv(m, d):
    p = d / "in.csv"
    head = m.head(30).copy()
    head[NUM] = head[NUM].astype(object)
    head.loc[[1, 2], NUM] = ["twelve", "1e999"]  # text, and a number that overflows to inf
    head.to_csv(p, index=False)
    return p


def _ragged_csv(m, d):
    p = d / "in.csv"
    text = m.head(5).to_csv(index=False)
    p.write_text(text + "a,b\n\"unterminated,quote\n", encoding="utf-8")
    return p


def _dir(m, d):
    p = d / "features.parquet"
    p.mkdir()
    return p


def _negatives(df):
    df[NUM] = -df[NUM].abs().fillna(0.0) - 1
    return df


def _strings(df):
    df[NUM] = df[NUM].map(lambda v: f"{v:.0f} staff")
    return df


def _ids_nan(df):
    df.loc[[0, 1, 2], "application_id"] = [None, "", "   "]
    return df


def _dup_ids(df):
    df["application_id"] = df["application_id"].iloc[0]
    return df


def _bool_col(df):
    df[NUM] = df[NUM] > 3
    return df


def _unknown_category(df):
    df["industry"] = "crypto_mining"
    df["lifecycle_stage"] = "zombie"
    return df


def _huge_id(df):
    df.loc[0, "application_id"] = "A" * 1_000_000
    return df


def _int_ids(df):
    df["application_id"] = np.arange(len(df), dtype="int64")
    return df


def _all_nan_features(df):
    num = df.select_dtypes("number").columns
    df[num] = np.nan
    return df


SCORE = [
    Case("missing-feature-column", _parquet(lambda df: df.drop(columns=[NUM])), 1, rf"required column\(s\) missing: {NUM}"),
    Case("missing-id-column", _parquet(lambda df: df.drop(columns=["application_id"])), 1, r"no application_id column"),
    Case("extra-columns", _parquet(lambda df: df.assign(branch="SH-01", note=1.5)), 0, r"rows in 60", rows=(60, 60, 0)),
    Case("negative-magnitudes", _parquet(_negatives), 0, r"OUT_OF_RANGE: 60", rows=(60, 0, 60)),
    Case("absurd-magnitude", _parquet(lambda df: _set(df, NUM, 3, 1e300)), 0, r"OUT_OF_RANGE: 1", rows=(60, 59, 1)),
    Case("inf-and-minus-inf", _parquet(lambda df: _set(_set(df, NUM, 0, np.inf), NUM, 1, -np.inf)), 0, r"NOT_FINITE: 2", rows=(60, 58, 2)),
    Case("wrong-dtype-strings", _parquet(_strings), 0, r"NOT_NUMERIC: 60", rows=(60, 0, 60)),
    Case("bool-in-numeric", _parquet(_bool_col), 0, r"scored 60", rows=(60, 60, 0)),
    Case("empty-and-blank-ids", _parquet(_ids_nan), 0, r"MISSING_ID: 3", rows=(60, 57, 3)),
    Case("all-ids-duplicate", _parquet(_dup_ids), 0, r"DUPLICATE_ID: 59", rows=(60, 1, 59)),
    Case("integer-ids", _parquet(_int_ids), 0, r"scored 60", rows=(60, 60, 0)),
    Case("huge-string-id", _parquet(_huge_id), 0, r"scored 60", rows=(60, 60, 0)),
    Case("unknown-categories", _parquet(_unknown_category), 0, r"scored 60", rows=(60, 60, 0)),
    Case("all-features-missing", _parquet(_all_nan_features), 0, r"scored 60", rows=(60, 60, 0)),
    Case("empty-table-with-columns", _parquet(lambda df: df.head(0)), 0, r"rows in 0", rows=(0, 0, 0)),
    Case("zero-byte-parquet", _raw("in.parquet", b""), 1, r"empty \(0 bytes\)"),
    Case("zero-byte-csv", _raw("in.csv", b""), 1, r"empty \(0 bytes\)"),
    Case("blank-csv", _raw("in.csv", b"\n\n"), 1, r"no header and no rows"),
    Case("header-only-csv", _header_only_csv, 0, r"rows in 0", rows=(0, 0, 0)),
    Case("csv-gbk-encoding", _csv_gbk("firm_id"), 1, r"not UTF-8 text.*re-export the CSV as UTF-8"),
    # scoring reads only the columns it uses: a column the model ignores is not decoded
    Case("csv-gbk-in-unused-column", _csv_gbk("region"), 0, r"rows in 20  scored 20  rejected 0", rows=(20, 20, 0)),
    Case("csv-mixed-types", _mixed_csv, 0, r"NOT_NUMERIC: 1", rows=(30, 28, 2)),
    # a record with the wrong number of fields is a row-level reject in its place, never shifted or fatal
    Case("csv-ragged-rows", _ragged_csv, 0, r"MALFORMED_ROW: 2", rows=(7, 5, 2)),
    Case("truncated-parquet", lambda m, d: _raw("in.parquet", m.head(50).to_parquet()[:-200])(m, d), 1, r"not a readable Parquet file"),
    Case("text-named-parquet", _raw("in.parquet", b"application_id,x\nA1,1\n"), 1, r"not a readable Parquet file"),
    Case("features-path-is-directory", _dir, 1, r"is a directory"),
    Case("features-path-missing", lambda m, d: d / "nope.parquet", 1, r"no such file"),
]


@pytest.mark.parametrize("case", SCORE, ids=[c.id for c in SCORE])
def test_score_feature_files(cli, case, use_champion_store, tmp_path):
    champ = use_champion_store
    path = case.make(champ.matrix.copy(), tmp_path)
    out = tmp_path / "scores.parquet"
    code, stdout, err = cli("score", "--model", champ.uri, "--features", path, "--out", out)
    check_result(case, code, stdout, err)
    rejects = tmp_path / "scores.rejects.parquet"
    if case.code != 0:
        assert not out.exists() and not rejects.exists(), case.id
    else:
        n_in = int(re.search(r"rows in ([\d,]+)", stdout).group(1).replace(",", ""))
        scored, rejected = len(pd.read_parquet(out)), len(pd.read_parquet(rejects))
        assert n_in == scored + rejected, f"{case.id}: rows lost"
        assert (n_in, scored, rejected) == case.rows
    assert not list(tmp_path.glob(".scores*.tmp")), "temporary file left behind"


# =============================================================================================
# 3. Bring-your-own tables for `riskmodel train --features TRAIN --test TEST --target bad`
# =============================================================================================


def _byo_frame(n=200, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "cat": rng.choice(["a", "b"], n)})
    df["bad"] = (rng.random(n) < 1 / (1 + np.exp(-(df["x"] * 1.5 - 1)))).astype(int)
    return df


def _byo(fn_train=None, fn_test=None, *, train_bytes=None, extra_args=()):
    """Write train.parquet/test.parquet (optionally broken) and return the train arguments."""

    def make(d: Path) -> list:
        df = _byo_frame()
        tr, te = df.iloc[:140].reset_index(drop=True), df.iloc[140:].reset_index(drop=True)
        tr = fn_train(tr) if fn_train else tr
        te = fn_test(te) if fn_test else te
        ptr, pte = d / "train.parquet", d / "test.parquet"
        tr.to_parquet(ptr, index=False)
        te.to_parquet(pte, index=False)
        if train_bytes is not None:
            ptr.write_bytes(train_bytes(ptr.read_bytes()))
        return ["--features", ptr, "--test", pte, "--target", "bad", "--model", "scorecard", *extra_args]

    return make


def _directions(text: str | bytes, name="dirs.toml"):
    def make(d: Path) -> list:
        args = _byo()(d)
        f = d / name
        f.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return [*args, "--directions", f]

    return make


def _byo_dir_as_features(d):
    args = _byo()(d)
    (d / "dir.parquet").mkdir()
    args[1] = d / "dir.parquet"
    return args


TRAIN = [
    Case("target-missing", _byo(lambda d: d.drop(columns=["bad"]), lambda d: d.drop(columns=["bad"])), 2, r"target column 'bad' not found"),
    Case("target-not-binary", _byo(lambda d: d.assign(bad=d["bad"] * 2)), 2, r"must be binary 0/1"),
    Case("target-text", _byo(lambda d: d.assign(bad=np.where(d["bad"] == 1, "bad", "good"))), 2, r"must be binary 0/1 .*'bad', 'good'"),
    Case("target-nan", _byo(lambda d: _set(d, "bad", 0, np.nan, as_type="float64")), 2, r"target column 'bad' has 1 missing value"),
    Case("one-class", _byo(lambda d: d.assign(bad=0)), 2, r"only one class"),
    Case("columns-differ", _byo(fn_test=lambda d: d.drop(columns=["z"]).assign(w=1.0)), 2, r"columns differ .*missing \['z'\], extra \['w'\]"),
    Case("no-usable-feature", _byo(lambda d: d.assign(x=1.0, z=np.nan, cat="a"), lambda d: d.assign(x=1.0, z=np.nan, cat="a")), 2, r"no usable feature"),
    Case("empty-train-table", _byo(lambda d: d.head(0)), 2, r"the training file has no rows"),
    Case("zero-byte-train", _byo(train_bytes=lambda b: b""), 2, r"train.parquet.*file is empty \(0 bytes\)"),
    Case("truncated-train", _byo(train_bytes=lambda b: b[: len(b) // 2]), 2, r"train.parquet.*not a readable Parquet file"),
    Case("train-is-directory", _byo_dir_as_features, 2, r"path is a directory"),
    Case("directions-malformed-toml", _directions("[directions\nx = = 1\n"), 2, r"dirs.toml: cannot parse directions file"),
    Case("directions-bad-value", _directions("[directions]\nx = 5\n"), 2, r"direction of 'x' must be -1"),
    Case("directions-unknown-feature", _directions("nosuch = 1\n"), 2, r"unknown feature\(s\) \['nosuch'\]"),
    Case("directions-gbk-bytes", _directions("x = 1  # 用电量\n".encode("gbk")), 2, r"dirs.toml"),
    Case("directions-missing-file", lambda d: [*_byo()(d), "--directions", d / "none.toml"], 2, r"directions file not found"),
]


@pytest.mark.parametrize("case", TRAIN, ids=[c.id for c in TRAIN])
def test_train_byo_tables(cli, case, mlflow_store, tmp_path):
    args = case.make(tmp_path)
    code, stdout, err = cli("train", *args, "--experiment", mlflow_store.experiment)
    check_result(case, code, stdout, err)


# =============================================================================================
# 4. Options and configs
# =============================================================================================


def _existing_file(d: Path) -> Path:
    (d / "file.txt").write_text("x")
    return d / "file.txt"


OPTIONS = [
    Case("generate-zero-firms", lambda d: ["generate", "--firms", "0", "--out", d / "g"], 2, r"--firms must be at least 1"),
    Case("generate-firms-not-a-number", lambda d: ["generate", "--firms", "ten", "--out", d / "g"], 2, r"Invalid value for '--firms'"),
    Case("generate-bad-month", lambda d: ["generate", "--firms", "10", "--out", d / "g", "--start", "2025-13"], 2, r"--start must be a month written YYYY-MM"),
    Case("generate-end-before-start", lambda d: ["generate", "--firms", "10", "--out", d / "g", "--start", "2024-01", "--end", "2023-01"], 2, r"--end \(2023-01\) is before --start"),
    Case("generate-absurd-default-rate", lambda d: ["generate", "--firms", "10", "--out", d / "g", "--default-rate", "7"], 2, r"--default-rate must be between"),
    Case("generate-negative-seed", lambda d: ["generate", "--firms", "10", "--out", d / "g", "--seed", "-3"], 2, r"--seed must be a non-negative"),
    Case("generate-out-is-a-file", lambda d: ["generate", "--firms", "10", "--out", _existing_file(d)], 2, r"is an existing file"),
    Case("catalog-unknown-format", lambda d: ["catalog", "--format", "xml"], 2, r"--format must be md, json or csv"),
    Case("features-errors-option", lambda d: ["features", "--data", d, "--out", d / "f.parquet", "--errors", "ignore"], 2, r"--errors must be 'raise' or 'reject'"),
    Case("features-out-not-parquet", lambda d: ["features", "--data", d, "--out", d / "f.csv"], 2, r"--out .*f.csv: suffix '.csv'; the suffix decides the format, use .parquet"),
    Case("features-data-missing", lambda d: ["features", "--data", d / "nope", "--out", d / "f.parquet"], 2, r"data directory .* does not exist"),
    Case("features-data-is-a-file", lambda d: ["features", "--data", _existing_file(d), "--out", d / "f.parquet"], 2, r"is a file; --data expects a directory"),
    Case("train-bad-cut", lambda d: ["train", "--data", d, "--model", "scorecard", "--cut", "last-june"], 2, r"--cut 'last-june' is not a date"),
    Case("train-unknown-model", lambda d: ["train", "--data", d, "--model", "xgboost"], 2, r"unknown model 'xgboost'"),
    Case("train-nothing-given", lambda d: ["train"], 2, r"needs --features TRAIN.parquet"),
    Case("score-both-inputs", lambda d: ["score", "--model", "models:/x@champion", "--out", d / "s.parquet", "--features", d / "a.parquet", "--data", d], 2, r"exactly one of --features FILE or --data DIR"),
    Case("score-chunk-size-zero", lambda d: ["score", "--model", "models:/x@champion", "--out", d / "s.parquet", "--features", d / "a.parquet", "--chunk-size", "0"], 2, r"--chunk-size must be at least 1"),
    Case("score-out-is-a-directory", lambda d: ["score", "--model", "models:/x@champion", "--out", d, "--features", d / "a.parquet"], 2, r"is a folder; give a file path inside it"),
    Case("score-out-under-a-file", lambda d: ["score", "--model", "models:/x@champion", "--out", _existing_file(d) / "s.parquet", "--features", d / "a.parquet"], 2, r"file.txt is a file, not a folder"),
    Case("score-unknown-engine", lambda d: ["score", "--model", "models:/x@champion", "--out", d / "s.parquet", "--features", d / "a.parquet", "--engine", "dask"], 2, r"unknown --engine 'dask'"),
]


@pytest.mark.parametrize("case", OPTIONS, ids=[c.id for c in OPTIONS])
def test_options_and_configs(cli, case, mlflow_store, tmp_path):
    args = case.make(tmp_path)
    code, stdout, err = cli(*args)
    check_result(case, code, stdout, err)


CORPUS_SIZE = len(FEATURES) + 1 + len(SCORE) + len(TRAIN) + len(OPTIONS)


def test_corpus_is_large_enough():
    assert CORPUS_SIZE >= 30
    for group in (FEATURES, SCORE, TRAIN, OPTIONS):  # ids are unique within an entry point
        assert len({c.id for c in group}) == len(group)


# =============================================================================================
# 5. The real console script behaves the same (a few cases through a subprocess)
# =============================================================================================


def _console_script() -> str:
    exe = Path(sys.executable).with_name("riskmodel")
    return str(exe) if exe.exists() else shutil.which("riskmodel")


@pytest.mark.slow
@pytest.mark.parametrize("case_id", ["csv-gbk-encoding", "negative-magnitudes"])
def test_console_script_matches_in_process(cli, case_id, use_champion_store, tmp_path):
    case = next(c for c in SCORE if c.id == case_id)
    champ = use_champion_store
    path = case.make(champ.matrix.copy(), tmp_path)
    args = ["score", "--model", champ.uri, "--features", str(path), "--out", str(tmp_path / "scores.parquet")]
    env = {**os.environ, "MLFLOW_TRACKING_URI": champ.store, "RISKMODEL_THREADS": "1"}
    proc = subprocess.run([_console_script(), *args], capture_output=True, text=True, env=env, timeout=120)
    check_result(case, proc.returncode, proc.stdout, proc.stderr)
    in_proc = cli(*args)
    assert in_proc[0] == proc.returncode
    assert [ln for ln in in_proc[2].splitlines() if ln.startswith("error")] == [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]


def test_console_script_features_error(small_hub, tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(small_hub, hub, ignore=shutil.ignore_patterns("cache"))
    _put(hub, "firms", _table(hub, "firms").drop(columns=["region"]))
    proc = subprocess.run([_console_script(), "features", "--data", str(hub), "--out", str(tmp_path / "f.parquet")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "RISKMODEL_THREADS": "1"})
    case = Case("subprocess-missing-column", None, 2, r"firms.parquet.*region.*required column is missing")
    check_result(case, proc.returncode, proc.stdout, proc.stderr)
