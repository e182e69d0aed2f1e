"""Data and checks shared by the SQL export tests (tests/code/test_sql_export.py, DuckDB, and
tests/model/test_sql_warehouses.py, Spark and a model trained on a generated data hub).

The training data is ``synthetic_credit`` with a few twists: a signed feature with many exact zeros
(LightGBM then puts split thresholds at +-1e-35 around its zero bin), a feature name that needs
quoting, and categories holding a quote, a backslash and Chinese text. The scoring file adds unseen
categories, values exactly on every bin edge and one step either side, extreme and tiny values, and
missing values stored both as NULL and as NaN.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskmodel.creditmodel import CreditModel, output_columns
from riskmodel.creditdata import synthetic_credit
from riskmodel.models import make_model

ODD = 'cash "flow" ratio'  # a feature name that needs quoting in every dialect
SECTOR_TEXT = {"a": "it's", "b": "back\\slash", "c": "中文 c"}
UNSEEN = ["zzz", "", "A", "IT'S", " it's", "back\\\\slash", "other", "(missing)", "rare", None]
FAST = {"gbm_additive": {"n_estimators": 150}}
EXPORTABLE = ("scorecard", "gbm_additive", "financial_baseline")


def credit_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    X, y, d = synthetic_credit(n, 6, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    signed = np.round(rng.normal(0.0, 1.0, n) + 0.8 * y, 1)
    signed[rng.random(n) < 0.25] = 0.0  # a zero bin with values on both sides
    signed[rng.random(n) < 0.04] = np.nan
    X["signed"] = signed
    d["signed"] = 1
    X["sector"] = X["sector"].replace(SECTOR_TEXT)
    X = X.rename(columns={"x1": ODD})
    d[ODD] = d.pop("x1")
    return X, y, d


def catalog() -> pd.DataFrame:
    """Reason texts for some features (one with a quote); the others fall back to their names."""
    return pd.DataFrame(
        {
            "name": ["x0", ODD, "sector", "signed"],
            "reason_en": ["Revenue 'trend' is weak", "Cash flow is thin", "Sector risk", ""],
            "reason_zh": ["营收趋势偏弱", "现金流偏紧", "行业风险", None],
            "actionable": [True, True, True, True],
        }
    )


def fit_credit_models(n: int = 2500, seed: int = 3) -> dict[str, CreditModel]:
    """Each exportable model fitted on ``credit_data``; x3 is suppressed (never a reason)."""
    X, y, d = credit_data(n, seed)
    out = {}
    for name in EXPORTABLE:
        est = make_model(name, directions=d, **FAST.get(name, {})).fit(X, y)
        out[name] = CreditModel.from_estimator(est, catalog=catalog(), name=name, suppress=["x3"])
    return out


def edges(credit_model: CreditModel) -> dict[str, np.ndarray]:
    """Numeric feature -> the bin edges of its step function (empty for a linear one)."""
    est = credit_model.estimator
    out = {}
    for j, c in enumerate(est.columns_):
        if est.kinds_[c] != "numeric":
            continue
        if hasattr(est, "binner_"):
            out[c] = np.asarray(est.binner_.bins_[c].splits) if c in est.selected_ else np.empty(0)
        elif hasattr(est, "shape_thresholds_"):
            out[c] = np.asarray(est.shape_thresholds_[j])
        else:
            out[c] = np.asarray([est.medians_[c]])
    return out


EXTREMES = [1e12, -1e12, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 5e-324, -5e-324, np.nan]


def scoring_frame(models: dict[str, CreditModel], n: int = 400, seed: int = 4) -> pd.DataFrame:
    """Rows to score: fresh data, unseen categories, every edge of every model and one step either
    side, extreme values; with application_id, firm_id and application_date."""
    X, _, _ = credit_data(n, seed)
    X.loc[: len(UNSEEN) - 1, "sector"] = UNSEEN
    rows = [X]
    base = X.iloc[[len(UNSEEN)]]
    numeric = [c for c in X.columns if c != "sector"]
    probes: dict[str, set] = {c: set(EXTREMES) for c in numeric}
    for cm in models.values():
        for c, e in edges(cm).items():
            for v in e:
                probes[c].update([float(v), float(np.nextafter(v, -np.inf)), float(np.nextafter(v, np.inf))])
    for c in numeric:
        vals = sorted(probes[c], key=lambda v: (np.isnan(v), v))
        block = pd.concat([base] * len(vals), ignore_index=True)
        block[c] = vals
        rows.append(block)
    frame = pd.concat(rows, ignore_index=True)
    n_rows = len(frame)
    frame.insert(0, "application_id", [f"app-{i:06d}" for i in range(n_rows)])
    frame.insert(1, "firm_id", [f"firm-{i % 97}" for i in range(n_rows)])
    frame.insert(2, "application_date", [dt.date(2024, 1, 1) + dt.timedelta(days=i % 365) for i in range(n_rows)])
    return frame


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Parquet with missing numbers as NaN (not NULL) in every other numeric column, NULL in the rest."""
    cols = {}
    numeric_seen = 0
    for c in frame.columns:
        s = frame[c]
        if c == "application_date":
            cols[c] = pa.array(s.tolist(), type=pa.date32())
        elif pd.api.types.is_float_dtype(s):
            keep_nan = numeric_seen % 2 == 0
            numeric_seen += 1
            cols[c] = pa.array(s.to_numpy(dtype="float64"), from_pandas=not keep_nan)
        else:
            cols[c] = pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in s], type=pa.string())
    table = pa.table(cols)
    assert any(pc.any(pc.is_nan(table[c])).as_py() for c in table.column_names if pa.types.is_floating(table[c].type))
    pq.write_table(table, path)
    return path


def _texts(values) -> list:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v) for v in values]


def assert_same_scores(expected: pd.DataFrame, got: pd.DataFrame, keys: list[str], k: int = 3) -> dict:
    """``got`` (from SQL) equals ``expected`` (``CreditModel.predict``, same rows in the same order):
    PD within 1e-9, score within 1e-6, grade and every reason column equal. Returns the largest
    differences."""
    assert list(got.columns) == [*keys, *output_columns(k)]
    assert len(got) == len(expected)
    pd_diff = np.abs(got["pd"].to_numpy(dtype="float64") - expected["pd"].to_numpy(dtype="float64"))
    score_diff = np.abs(got["score"].to_numpy(dtype="float64") - expected["score"].to_numpy(dtype="float64"))
    assert pd_diff.max() <= 1e-9, f"PD differs by {pd_diff.max():.3g} at row {int(pd_diff.argmax())}"
    assert score_diff.max() <= 1e-6, f"score differs by {score_diff.max():.3g} at row {int(score_diff.argmax())}"
    for col in output_columns(k)[2:]:
        a, b = _texts(expected[col].astype(object)), _texts(got[col].astype(object))
        bad = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        assert not bad, f"{col} differs in {len(bad)} rows, first row {bad[0]}: python {a[bad[0]]!r}, sql {b[bad[0]]!r}"
    return {"pd": float(pd_diff.max()), "score": float(score_diff.max())}
