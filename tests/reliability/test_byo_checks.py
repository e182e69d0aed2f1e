"""Bring-your-own training flags what a data scientist would want flagged (riskmodel.dataset.read_byo).

The adversarial run trained and registered models on a two-row file, on an id column, on the
training file reused as the test file, and turned "1,200" into a category, all without a word.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel.dataset import MIN_TRAIN_DEFAULTS, MIN_TRAIN_ROWS, id_like, read_byo
from riskmodel.errors import UserError
from riskmodel.train import AUC_GAP_WARNING, fit_warnings


def _frame(n=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "z": rng.normal(size=n), "cat": rng.choice(["a", "b", "c"], n)})
    df["bad"] = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x - 1)))).astype(int)
    return df


def _write(df: pd.DataFrame, path, csv=False):
    (df.to_csv(path, index=False) if csv else df.to_parquet(path, index=False))
    return path


def _pair(tmp_path, tr, te, csv=False):
    ext = "csv" if csv else "parquet"
    return _write(tr, tmp_path / f"train.{ext}", csv), _write(te, tmp_path / f"test.{ext}", csv)


def test_identifier_like_columns_are_excluded_unless_kept(tmp_path):
    df = _frame()
    df.insert(0, "loan_id", [f"L{i:05d}" for i in range(len(df))])
    df["row_no"] = np.arange(len(df))  # a distinct whole number on every row
    df["customer"] = [f"C{i}" for i in range(len(df))]  # distinct text on every row
    df["industry_code"] = np.random.default_rng(1).choice(["01", "02", "03"], len(df))
    tr, te = _pair(tmp_path, df.iloc[:300], df.iloc[300:])
    b = read_byo(tr, te, "bad")
    assert {c: i["use"] for c, i in b.columns.items()} == {
        "bad": "target", "loan_id": "excluded", "row_no": "excluded", "customer": "excluded",
        "x": "feature", "z": "feature", "cat": "feature", "industry_code": "feature"}
    assert "its name ('loan_id') marks an identifier" in b.columns["loan_id"]["reason"]
    assert "a distinct whole number on every row (monotone" in b.columns["row_no"]["reason"]
    assert "--keep-column row_no" in b.columns["row_no"]["reason"]
    assert b.columns["industry_code"]["kind"] == "categorical"  # zero-padded codes stay text
    kept = read_byo(tr, te, "bad", keep_columns=["row_no"])
    assert kept.columns["row_no"]["use"] == "feature" and "row_no" in kept.features
    with pytest.raises(UserError, match=r"--keep-column 'nope' is not a feature column"):
        read_byo(tr, te, "bad", keep_columns=["nope"])


@pytest.mark.parametrize(("name", "hit"), [("id", True), ("loan_id", True), ("LoanID", True), ("loanId", True), ("客户编号", True),
                                            ("paid", False), ("valid", False), ("idle_days", False)])
def test_identifier_names(name, hit):
    assert (id_like(name, pd.Series([1.0, 2.0, 2.0]), "numeric") is not None) == hit


@pytest.mark.parametrize(("n", "bad"), [(2, 1), (MIN_TRAIN_ROWS - 1, 30), (500, MIN_TRAIN_DEFAULTS - 1), (500, 500 - MIN_TRAIN_DEFAULTS + 1)])
def test_too_few_rows_or_defaults_are_refused_with_the_minimum(tmp_path, n, bad):
    df = _frame(max(n, 10)).head(n).copy()
    df["bad"] = [1] * bad + [0] * (n - bad)
    tr, te = _pair(tmp_path, df, _frame(100, seed=3))
    with pytest.raises(UserError, match=rf"{n:,} rows with {bad:,} defaults .*training needs at least {MIN_TRAIN_ROWS} rows and {MIN_TRAIN_DEFAULTS} of each class"):
        read_byo(tr, te, "bad")


def test_warnings_for_the_test_file(tmp_path):
    df = _frame(600)
    tr, te = _pair(tmp_path, df.iloc[:400], df.iloc[400:].assign(bad=0))
    assert any("holds only class 0" in w for w in read_byo(tr, te, "bad").warnings)
    same = read_byo(tr, tr, "bad").warnings
    assert any("holds the same rows as" in w for w in same)
    overlap = pd.concat([df.iloc[400:500], df.iloc[:50]], ignore_index=True)
    _write(overlap, tmp_path / "overlap.parquet")
    w = read_byo(tr, tmp_path / "overlap.parquet", "bad").warnings
    assert any(re.startswith("50 of 150 test rows (33.3%) are identical to training rows") for re in w), w
    assert read_byo(tr, _write(df.iloc[400:], tmp_path / "clean.parquet"), "bad").warnings == []


def test_a_test_file_with_few_of_a_class_is_warned(tmp_path):
    """Three test rows gave 'test: auc 1.0000' and no word that it means nothing."""
    df = _frame(600)
    tr = _write(df.iloc[:400], tmp_path / "train.parquet")
    te = df.iloc[400:]
    few = pd.concat([te[te["bad"] == 1].head(MIN_TRAIN_DEFAULTS - 1), te[te["bad"] == 0]], ignore_index=True)
    w = read_byo(tr, _write(few, tmp_path / "few.parquet"), "bad").warnings
    assert any(f"holds {MIN_TRAIN_DEFAULTS - 1} default(s) and {int((te['bad'] == 0).sum())} non-default(s)" in x and "are noise" in x for x in w), w
    enough = pd.concat([te[te["bad"] == 1].head(MIN_TRAIN_DEFAULTS), te[te["bad"] == 0]], ignore_index=True)
    assert read_byo(tr, _write(enough, tmp_path / "enough.parquet"), "bad").warnings == []


def test_coercions_are_counted_per_column(tmp_path):
    df = _frame()
    te = df.iloc[300:].copy()
    te["x"] = te["x"].astype(object)
    te.iloc[:7, te.columns.get_loc("x")] = "n.a."
    tr, te_p = _pair(tmp_path, df.iloc[:300], te.astype({"x": str}))
    b = read_byo(tr, te_p, "bad")
    assert b.columns["x"]["coerced_to_missing"] == {"train": 0, "test": 7, "examples": ["n.a."]}
    assert b.test["x"].isna().sum() == 7 and b.test["x"].dtype == np.float64
    assert any("column 'x': 0 training and 7 test value(s) are not numbers" in w for w in b.warnings)


def test_numeric_text_is_parsed_not_a_category(tmp_path):
    df = _frame()
    rng = np.random.default_rng(5)
    v = rng.integers(100, 50_000, len(df))
    df["amount"] = [f"{x:,}" for x in v]
    df["rate"] = [f"{x / 1000:.1f}%" for x in v]
    df["padded"] = [f" {x} " for x in v]
    df["yuan"] = [f"¥{x:,}" for x in v]
    tr, te = _pair(tmp_path, df.iloc[:300], df.iloc[300:])
    b = read_byo(tr, te, "bad")
    for c in ("amount", "rate", "yuan"):
        assert b.columns[c]["kind"] == "numeric_text" and b.columns[c]["use"] == "feature", b.columns[c]
        assert b.train[c].dtype == np.float64
    assert "thousands separators" in b.columns["amount"]["note"] and "percent" in b.columns["rate"]["note"]
    assert b.columns["padded"]["kind"] == "numeric_text" and "surrounding spaces" in b.columns["padded"]["note"]
    assert np.allclose(b.train["amount"], v[:300]) and np.allclose(b.train["rate"], [float(f"{x / 1000:.1f}") / 100 for x in v[:300]])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=2))
def test_auc_gap_warning(aucs):
    tr, te = aucs
    warned = bool(fit_warnings({"train_auc": tr, "test_auc": te}))
    assert warned == (tr - te > AUC_GAP_WARNING)


def test_csv_files_train_score_and_explain_end_to_end(cli, mlflow_store, tmp_path):
    """A CSV passed as --features trains (it used to say "column '-': not a readable Parquet file");
    its id column is excluded, its numeric text parsed; the registered model scores the test CSV
    (numeric text included) with the PDs the training run evaluated."""
    df = _frame(500)
    df.insert(0, "application_id", [f"A{i:05d}" for i in range(len(df))])
    df["income"] = [f"{x:,.0f}" for x in np.random.default_rng(2).integers(1000, 90_000, len(df))]
    tr, te = _pair(tmp_path, df.iloc[:350], df.iloc[350:], csv=True)
    code, out, err = cli("train", "--features", tr, "--test", te, "--target", "bad", "--model", "scorecard",
                         "--experiment", mlflow_store.experiment, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["columns"]["application_id"]["use"] == "excluded" and s["columns"]["income"]["kind"] == "numeric_text"
    assert s["n_features"] == 4 and s["warnings"] == []
    code, out, err = cli("score", "--model", s["model_uri"], "--features", te, "--out", tmp_path / "s.parquet", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["rows_in"] == r["scored"] == 150 and r["rejected"] == 0
    from riskmodel import tracking
    from riskmodel.evaluation import auc

    scores = pd.read_parquet(tmp_path / "s.parquet")
    y = df.iloc[350:].set_index("application_id").loc[scores["application_id"], "bad"].to_numpy()
    assert auc(y, scores["pd"].to_numpy()) == pytest.approx(s["metrics"]["test_auc"], abs=1e-6)
    assert tracking.client().get_run(s["run_id"]).data.params["keep_columns"] == "[]"
    code, out, err = cli("train", "--features", tr, "--test", te, "--target", "bad", "--experiment", mlflow_store.experiment)
    assert code == 0 and "column application_id: not used: looks like an identifier" in out and "column income: text holding numbers" in out
