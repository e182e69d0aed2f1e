"""SQL export in Spark SQL (local mode, one session for the module) and on models trained on a
generated data hub with the real catalog (Chinese reason texts, non-actionable features suppressed),
in DuckDB and Spark: PD within 1e-9, score within 1e-6, grade and reasons equal, row for row. And
the commands: `riskmodel export` run in Spark SQL, `riskmodel score --engine duckdb` and
`riskmodel score` on the same file with bad rows (the same rejects), row for row.

DuckDB on the synthetic edge cases: tests/code/test_sql_export.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))
from sql_fixtures import EXPORTABLE, assert_same_scores, fit_credit_models, scoring_frame, write_parquet  # noqa: E402

from riskmodel.sql import duckdb_parquet_view, export_sql  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")]


@pytest.fixture(scope="module")
def spark():
    from riskmodel.spark import spark_session

    session = spark_session(app_name="riskmodel-sql-export-test")
    yield session
    session.stop()


def run_spark(spark, sql: str, path: Path) -> pd.DataFrame:
    spark.read.parquet(str(path)).createOrReplaceTempView("features")
    df = spark.sql(sql)
    rows = df.collect()  # plain Python values: no Arrow or pandas conversion in between
    return pd.DataFrame([tuple(r) for r in rows], columns=df.columns)


def run_duckdb(sql: str, path: Path) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute(duckdb_parquet_view(path))
    return con.sql(sql).df()


def aligned(got: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Rows of ``got`` in the order of ``ids`` (the SQL is a projection, but Spark does not promise order)."""
    assert sorted(got["application_id"].astype(str)) == sorted(ids)
    return got.set_index(got["application_id"].astype(str)).loc[ids].reset_index(drop=True)


def test_spark_sql_scores_equal_python_row_for_row(spark, tmp_path):
    models = fit_credit_models()
    frame = scoring_frame(models)
    path = write_parquet(frame, tmp_path / "features.parquet")
    frame = pd.read_parquet(path)
    ids = frame["application_id"].tolist()
    for name in EXPORTABLE:
        cm = models[name]
        got = aligned(run_spark(spark, export_sql(cm, dialect="spark"), path), ids)
        assert_same_scores(cm.predict(frame), got, ["application_id", "firm_id", "application_date"])


@pytest.fixture(scope="module")
def hub_models(small_hub):
    """Each exportable model trained on the small generated hub the way `riskmodel train` builds it
    (catalog features and directions, CreditModel with the catalog rows), and the feature matrix."""
    from features.contract import TARGET
    from riskmodel.dataset import load_labelled
    from riskmodel.train import build_estimator, features_for_model, make_credit_model, usable_features

    ls = load_labelled(small_hub, use_cache=False)
    matrix, catalog, labelled = ls.features.assign(application_id=ls.features["application_id"].astype(str)), ls.catalog, ls.labelled
    models = {}
    for name in EXPORTABLE:
        features = usable_features(labelled, features_for_model(name, labelled, catalog))
        directions = {str(r.name): int(r.direction) for r in catalog.itertuples() if r.name in features}
        params = {"n_estimators": 300} if name == "gbm_additive" else None
        est = build_estimator(name, directions, 42, params).fit(labelled[features], labelled[TARGET].to_numpy())
        models[name] = make_credit_model(est, features, catalog, name)
    return models, matrix


def test_models_trained_on_a_data_hub_score_the_same_in_duckdb_and_spark(hub_models, spark, tmp_path):
    models, matrix = hub_models
    path = tmp_path / "hub.parquet"
    matrix.to_parquet(path)
    frame = pd.read_parquet(path)
    ids = frame["application_id"].tolist()
    for name, cm in models.items():
        assert cm.suppress, "the catalog marks some features non-actionable; they must never be reasons"
        expected = cm.predict(frame)
        keys = [c for c in ("application_id", "firm_id", "application_date") if c in frame.columns]
        sql = export_sql(cm, columns=list(frame.columns))
        got = run_duckdb(sql, path)
        assert got["application_id"].tolist() == ids
        assert_same_scores(expected, got, keys)
        # Spark: with many features the plan outgrows the JVM's 64 KB method limit for whole-stage
        # code generation; Spark logs that and runs it without (docs/scoring.md). Same results.
        got = aligned(run_spark(spark, export_sql(cm, dialect="spark", columns=list(frame.columns)), path), ids)
        assert_same_scores(expected, got, keys)
        reasons = expected[["reason_1", "reason_2", "reason_3"]].astype(object)
        assert not reasons.isin(list(cm.suppress)).any().any()
        assert expected["reason_1_zh"].astype(str).str.contains(r"[\u4e00-\u9fff]").any()  # catalog texts in Chinese


def test_riskmodel_score_in_pandas_and_duckdb_and_the_export_in_spark_agree(cli, trained_model, spark, monkeypatch, tmp_path):
    """A registered gbm_additive scores one feature file three ways: `riskmodel score` (the model),
    `riskmodel score --engine duckdb` (its SQL in DuckDB, after the same row checks) and the SQL of
    `riskmodel export --dialect spark` in Spark SQL over the rows the checks let through."""
    import numpy as np

    from riskmodel.creditmodel import output_columns

    tm = trained_model("gbm_additive", experiment="sql-engines")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tm.store)
    matrix = tm.matrix.assign(application_id=tm.matrix["application_id"].astype(str))
    bad = matrix.copy()
    text_col, bounded = "firm_size_headcount", "patent_grants_24m"
    bad[text_col] = bad[text_col].astype(object)
    bad.loc[1, text_col] = "twelve"
    bad.loc[2, "leverage"] = np.inf
    bad.loc[3, bounded] = -4.0
    bad.loc[4, "application_id"] = bad.loc[0, "application_id"]
    bad.loc[5, "application_id"] = " "
    bad.loc[7, "leverage"] = 1e15
    bad[text_col] = bad[text_col].astype(str).replace({"nan": None})
    bad.to_parquet(tmp_path / "bad.parquet", index=False)

    runs = {}
    for engine in ("pandas", "duckdb"):
        code, out, err = cli("score", "--model", tm.uri, "--features", tmp_path / "bad.parquet", "--out", tmp_path / f"{engine}.parquet",
                             "--engine", engine, "--chunk-size", "700", "--json")
        assert code == 0, err
        runs[engine] = json.loads(out)
    a, b = runs["pandas"], runs["duckdb"]
    assert a["rejected"] == 6 and a["rows_in"] == len(bad)
    assert {k: v for k, v in a.items() if k not in ("output", "rejects", "mean_pd")} == {k: v for k, v in b.items() if k not in ("output", "rejects", "mean_pd")}
    assert b["mean_pd"] == pytest.approx(a["mean_pd"], rel=1e-12)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "pandas.rejects.parquet"), pd.read_parquet(tmp_path / "duckdb.rejects.parquet"))
    expected, got = pd.read_parquet(tmp_path / "pandas.parquet"), pd.read_parquet(tmp_path / "duckdb.parquet")
    keys = ["application_id", "firm_id", "application_date"]
    assert got.dtypes.equals(expected.dtypes) and got[keys + ["model_name", "model_version"]].equals(expected[keys + ["model_name", "model_version"]])
    assert_same_scores(expected, got[keys + output_columns(3)], keys)

    code, out, err = cli("export", "--model", tm.uri, "--format", "sql", "--dialect", "spark", "--out", tmp_path / "model.sql")
    assert code == 0, err
    rejected = pd.read_parquet(tmp_path / "pandas.rejects.parquet")["row"]
    assert sorted(rejected) == [1, 2, 3, 4, 5, 7]
    clean = matrix.drop(index=rejected)  # the rows the checks let through, with their numbers as numbers
    clean.to_parquet(tmp_path / "clean.parquet", index=False)
    ids = clean["application_id"].tolist()
    assert ids == expected["application_id"].tolist()
    spark_scores = aligned(run_spark(spark, (tmp_path / "model.sql").read_text(encoding="utf-8"), tmp_path / "clean.parquet"), ids)
    assert_same_scores(expected[keys + output_columns(3)], spark_scores, keys)


def test_gbm_monotone_is_refused_by_export_and_the_duckdb_engine(cli, trained_model, monkeypatch, tmp_path):
    tm = trained_model("gbm_monotone", experiment="mon", promote=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tm.store)
    tm.matrix.head(20).to_parquet(tmp_path / "f.parquet", index=False)
    names = "models that export: scorecard, gbm_additive, financial_baseline"
    code, out, err = cli("export", "--model", tm.uri, "--out", tmp_path / "m.sql")
    assert code == 2 and "gbm_monotone cannot be exported as SQL" in err and names in err
    code, out, err = cli("score", "--model", tm.uri, "--features", tmp_path / "f.parquet", "--out", tmp_path / "s.parquet", "--engine", "duckdb")
    assert code == 2 and "--engine duckdb scores with the model's SQL export" in err and names in err and "use --engine pandas" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet"]  # nothing written
