"""SQL export (riskmodel.sql) run in DuckDB over a Parquet file, against CreditModel.predict row for row.

Spark SQL and a model trained on a generated data hub: tests/model/test_sql_warehouses.py (slow).
"""

from __future__ import annotations

import struct

import duckdb
import numpy as np
import pandas as pd
import pytest
from sql_fixtures import (
    EXPORTABLE,
    ODD,
    UNSEEN,
    assert_same_scores,
    credit_data,
    fit_credit_models,
    scoring_frame,
    write_parquet,
)

from features.contract import ID_COLUMNS
from riskmodel.binning import VariableBinning
from riskmodel.creditmodel import CreditModel, output_columns
from riskmodel.errors import ScoringError, UserError
from riskmodel.models import LGB_ZERO_THRESHOLD, GBMMonotone, Scorecard
from riskmodel.sql import _num, duckdb_parquet_view, export_sql

KEYS = list(ID_COLUMNS)
# financial_baseline at x = 1e12: log-odds in the billions, exp overflows to inf and PD is 0 or 1 (in SQL too)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")


@pytest.fixture(scope="module")
def models():
    return fit_credit_models()


@pytest.fixture(scope="module")
def scored_file(models, tmp_path_factory):
    frame = scoring_frame(models)
    path = write_parquet(frame, tmp_path_factory.mktemp("sql") / "features.parquet")
    return path, pd.read_parquet(path)


def run_duckdb(sql: str, path, table: str = "features") -> pd.DataFrame:
    con = duckdb.connect()
    con.execute(duckdb_parquet_view(path, table))
    return con.sql(sql).df()


@pytest.mark.parametrize("dialect", ["duckdb", "ansi"])
@pytest.mark.parametrize("name", EXPORTABLE)
def test_sql_scores_equal_python_row_for_row(models, scored_file, name, dialect):
    path, frame = scored_file
    cm = models[name]
    got = run_duckdb(export_sql(cm, dialect=dialect), path)
    assert got["application_id"].tolist() == frame["application_id"].tolist()  # a projection keeps the input order
    diffs = assert_same_scores(cm.predict(frame), got, KEYS)
    print(f"{name} ({dialect}): largest PD difference {diffs['pd']:.2g}, score {diffs['score']:.2g}")


def test_the_data_reaches_the_hard_cases(models, scored_file):
    """The comparison above is only as good as its data: check that it has what the tests claim."""
    _, frame = scored_file
    sc, gbm = models["scorecard"].estimator, models["gbm_additive"].estimator
    assert "sector" in sc.selected_ and ODD in sc.selected_  # a categorical and a quoted name in the scorecard
    j = gbm.columns_.index("signed")
    assert np.any(np.abs(gbm.shape_thresholds_[j]) <= LGB_ZERO_THRESHOLD)  # LightGBM's zero bin
    assert "ABS(" in export_sql(models["gbm_additive"])
    assert set(UNSEEN) - {None} <= set(frame["sector"].dropna())
    assert frame["sector"].isna().any()
    for c in sc.selected_:
        if sc.kinds_[c] == "numeric":  # every scorecard split is in the scoring data
            assert set(sc.binner_.bins_[c].splits) <= set(frame[c].dropna())
    out = models["gbm_additive"].predict(frame)
    assert out["reason_3"].isna().any() and out["reason_1"].notna().any()
    assert not (out[["reason_1", "reason_2", "reason_3"]] == "x3").any().any()  # x3 suppressed


def test_a_pd_on_a_grade_boundary_takes_the_higher_grade(models, scored_file):
    """MasterScale.grade_index: Rk holds bounds[k-2] <= pd < bounds[k-1]. Bounds are set to PDs that
    SQL and Python compute to the same bits (exp differs between libm and numpy now and then), so
    rows sit exactly on them in both."""
    from riskmodel.grades import MasterScale

    path, frame = scored_file
    base = models["gbm_additive"]
    py = base.predict(frame)["pd"].to_numpy()
    sql = run_duckdb(export_sql(base), path)["pd"].to_numpy()
    same = np.unique(py[(py == sql) & (py > 0) & (py < 1)])
    assert len(same) > 100
    bounds = tuple(float(b) for b in same[np.linspace(0, len(same) - 1, 6).astype(int)[1:-1]])
    scale = MasterScale(bounds=bounds, labels=tuple(f"G{i}" for i in range(len(bounds) + 1)))
    cm = CreditModel.from_estimator(base.estimator, catalog=base.catalog, suppress=base.suppress, master_scale=scale)
    expected = cm.predict(frame)
    on = np.isin(expected["pd"].to_numpy(), bounds)
    assert on.sum() >= len(bounds)
    assert set(expected.loc[on, "grade"].astype(str)) == {f"G{i}" for i in range(1, len(bounds) + 1)}
    assert_same_scores(expected, run_duckdb(export_sql(cm), path), KEYS)


def _tie_scorecard(n_features: int = 8) -> CreditModel:
    """A scorecard whose contributions take a handful of values, so ties are everywhere."""
    rng = np.random.default_rng(5)
    bins = {}
    for j in range(n_features):
        woe = rng.choice([-0.5, 0.0, 0.25, 0.5, 1.0], size=5)  # 4 numeric bins + the missing bin
        bins[f"f{j}"] = VariableBinning(
            name=f"f{j}", kind="numeric", direction=1, labels=["b0", "b1", "b2", "b3", "Missing"],
            count=np.ones(5), event=np.ones(5), woe=woe, iv_terms=np.zeros(5),
            splits=np.asarray([1.0, 2.0, 3.0]), missing_seen=True,
        )
    sc = Scorecard.from_parts(bins, np.ones(n_features), -2.0)
    return CreditModel.from_estimator(sc, suppress=["f6"])


def test_ties_go_to_the_earlier_feature(tmp_path):
    cm = _tie_scorecard()
    rng = np.random.default_rng(6)
    X = pd.DataFrame(rng.integers(0, 5, size=(3000, 8)).astype("float64"), columns=[f"f{j}" for j in range(8)])
    X = X.mask(rng.random(X.shape) < 0.1)
    contrib = cm.estimator.contributions(X).drop(columns="f6").to_numpy()
    top = np.sort(np.where(contrib > 0, contrib, -np.inf), axis=1)[:, ::-1]
    assert (top[:, 0] == top[:, 1]).mean() > 0.3 and (top[:, 2] == top[:, 3]).mean() > 0.2  # ties at every rank
    X.insert(0, "application_id", [str(i) for i in range(len(X))])
    X.to_parquet(tmp_path / "ties.parquet")
    got = run_duckdb(export_sql(cm, key_columns=("application_id",)), tmp_path / "ties.parquet")
    assert_same_scores(cm.predict(X), got, ["application_id"])


@pytest.mark.parametrize("k", [1, 5])
def test_number_of_reasons_follows_the_model(models, scored_file, k):
    path, frame = scored_file
    base = models["gbm_additive"]
    cm = CreditModel.from_estimator(base.estimator, catalog=base.catalog, suppress=base.suppress, n_reasons=k)
    got = run_duckdb(export_sql(cm), path)
    assert_same_scores(cm.predict(frame), got, KEYS, k=k)


def test_no_reasons_when_every_feature_is_suppressed(models, scored_file):
    path, frame = scored_file
    base = models["financial_baseline"]
    cm = CreditModel.from_estimator(base.estimator, suppress=list(base.features))
    got = run_duckdb(export_sql(cm), path)
    assert_same_scores(cm.predict(frame), got, KEYS)
    assert got["reason_1"].isna().all()


def test_gbm_monotone_is_refused_naming_the_models_that_export():
    X, y, d = credit_data(600, 1)
    cm = CreditModel.from_estimator(GBMMonotone(directions=d, n_estimators=10).fit(X, y))
    with pytest.raises(UserError, match=r"gbm_monotone cannot be exported as SQL: .*; models that export: scorecard, gbm_additive, financial_baseline"):
        export_sql(cm)


def test_bad_options_are_refused(models):
    cm = models["scorecard"]
    with pytest.raises(UserError, match="unknown SQL dialect 'oracle'; choose one of: duckdb, spark, ansi"):
        export_sql(cm, dialect="oracle")
    with pytest.raises(UserError, match="table name 'db.' is empty or has an empty part"):
        export_sql(cm, table="db.")
    with pytest.raises(UserError, match="column names 'PD' and 'pd' clash in the contributions"):
        export_sql(cm, key_columns=("application_id", "PD"))


def test_columns_given_drop_absent_keys_and_require_used_features(models, scored_file, tmp_path):
    _, frame = scored_file
    cm = models["scorecard"]
    unselected = [c for c in cm.features if c not in cm.used_features]
    assert unselected  # the scorecard dropped some features; the SQL must not read them
    table = frame.drop(columns=["firm_id", "application_date", *unselected])
    table.to_parquet(tmp_path / "narrow.parquet")
    sql = export_sql(cm, table="narrow", columns=list(table.columns))
    got = run_duckdb(sql, tmp_path / "narrow.parquet", table="narrow")
    assert list(got.columns) == ["application_id", *output_columns(3)]
    assert_same_scores(cm.predict(table), got, ["application_id"])
    short = [c for c in table.columns if c != ODD]
    with pytest.raises(ScoringError, match=r"table 'narrow' lacks 1 feature column\(s\) the model needs: \['cash \"flow\" ratio'\]"):
        export_sql(cm, table="narrow", columns=short)


def test_dotted_table_names_and_dialect_quoting(models):
    cm = models["scorecard"]
    assert 'FROM "db"."features"' in export_sql(cm, table="db.features")
    spark = export_sql(cm, table="db.features", dialect="spark")
    assert "FROM `db`.`features`" in spark and "`cash \"flow\" ratio`" in spark and "'back\\\\slash'" not in spark.split("rm_contributions")[0]
    assert "'it\\'s'" in spark and "'it''s'" in export_sql(cm)  # string literals escaped per dialect
    assert export_sql(cm) == export_sql(cm)  # deterministic


def test_literals_read_back_as_the_same_double():
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [rng.normal(0, 1, 200), rng.normal(0, 1, 200) * 10.0 ** rng.integers(-300, 300, 200),
         [0.1, 1 / 3, 2.0**-1074, -(2.0**-1074), 2.0**-1022, 1.7976931348623157e308, -0.0, 0.0, 600.0, 1e22, 1e23]]
    )
    sql = "SELECT " + ", ".join(f"{_num(v)} AS v{i}" for i, v in enumerate(values))
    row = duckdb.sql(sql).fetchall()[0]
    for v, back in zip(values, row):
        assert struct.pack("<d", float(v)) == struct.pack("<d", back), (v, _num(v), back)
    with pytest.raises(UserError, match="cannot export a fitted value = nan to SQL"):
        _num(float("nan"))


@pytest.mark.parametrize("name", EXPORTABLE)
def test_the_duckdb_engine_predicts_like_the_model(models, scored_file, name):
    """`riskmodel score --engine duckdb` scores each chunk's checked rows with DuckDBScorer: the
    columns, values and dtypes (categories included) of CreditModel.predict, the chunk's index kept,
    one connection for every chunk."""
    from riskmodel.sql import DuckDBScorer

    _, frame = scored_file
    cm = models[name]
    X = frame[cm.used_features]
    X = X.set_axis(np.arange(len(X))[::-1] * 3)  # an index that is not 0..n-1
    scorer = DuckDBScorer(cm, threads=2)
    try:
        for chunk in (X.iloc[:150], X.iloc[150:], X.iloc[:0]):
            expected = cm.predict(chunk) if len(chunk) else None
            got = scorer(chunk)
            assert got.index.equals(chunk.index)
            if expected is None:
                assert list(got.columns) == output_columns(3)
                continue
            assert_same_scores(expected, got, [])
            assert got.dtypes.equals(expected.dtypes)
            for c in output_columns(3)[2:]:
                assert list(got[c].cat.categories) == list(expected[c].cat.categories), c
    finally:
        scorer.close()
