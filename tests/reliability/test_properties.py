"""Property-based tests (hypothesis): arbitrary valid inputs never break the feature layer, the scoring
validation accounts for every row of any frame, and monotone models stay monotone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))  # the worked example's tables
from feature_fixtures import company_tables, monthly  # noqa: E402

from features.build import build_features  # noqa: E402
from features.tables import SCHEMAS, validate_frame  # noqa: E402
from riskmodel.ids import IdLedger  # noqa: E402
from riskmodel.scoring import REJECT_REASONS, validate_chunk  # noqa: E402

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ---- signal functions on arbitrary valid tables -------------------------------------------------


def _value(col, draw):
    """A valid value of a numeric column: its bounds, zero, NaN when nullable, or anything in range."""
    lo = col.min if col.min is not None else -1e8
    hi = col.max if col.max is not None else 1e8
    choices = [st.just(lo), st.just(hi), st.just(max(lo, 0.0)), st.floats(lo, hi, allow_nan=False)]
    if col.nullable:
        choices.append(st.just(np.nan))
    v = draw(st.one_of(*choices))
    return float(np.floor(v)) if col.dtype == "int" and np.isfinite(v) else v


@st.composite
def valid_tables(draw) -> dict:
    """The worked example with every numeric value redrawn inside its schema, rows dropped at random,
    and a monthly electricity/invoices history of random length and values."""
    tables = company_tables()
    n_months = draw(st.integers(0, 30))
    if n_months:
        kwh = [draw(st.one_of(st.just(0.0), st.floats(0, 1e9))) for _ in range(n_months)]
        tables["electricity"] = monthly("electricity", "A", "2022-01-01", kwh=kwh)
        share = [draw(st.floats(0, 1)) for _ in range(n_months)]
        tables["invoices"] = monthly(
            "invoices", "A", "2022-01-01",
            sales_amount=[draw(st.floats(0, 1e8)) for _ in range(n_months)], purchase_amount=[0.0] * n_months,
            n_customers=[draw(st.integers(0, 1000)) for _ in range(n_months)], n_suppliers=[1] * n_months, top_customer_share=share,
        )
    for name, df in list(tables.items()):
        if name == "applications":
            continue
        schema = SCHEMAS[name]
        df = df.copy()
        for col in schema.columns:
            if col.dtype in ("int", "float") and col.name not in schema.key and len(df):
                vals = [_value(col, draw) for _ in range(len(df))]
                df[col.name] = pd.Series(vals, index=df.index, dtype="float64")
                if col.dtype == "int" and df[col.name].notna().all():
                    df[col.name] = df[col.name].astype("int64")
        if name != "firms" and len(df):
            keep = draw(st.lists(st.booleans(), min_size=len(df), max_size=len(df)))
            df = df.loc[np.array(keep, dtype=bool)].reset_index(drop=True)
        clean, violations, _ = validate_frame(df, schema)  # the drawn table must itself be valid
        assert not violations, violations
        tables[name] = clean
    return tables


@settings(max_examples=12, **SETTINGS)
@given(tables=valid_tables())
def test_signals_never_raise_and_keep_shape_and_index(tables):
    apps = tables["applications"]
    X = build_features(tables)
    assert len(X) == len(apps)
    assert X["application_id"].tolist() == apps["application_id"].tolist()
    numeric = X.columns[8:]
    assert len(numeric) > 50
    assert all(X[c].dtype == "float64" for c in numeric)
    assert not np.isinf(X[numeric].to_numpy()).any(), "a signal produced an infinite value"


# ---- scoring validation on arbitrary frames -------------------------------------------------------

_cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
)
_id = st.one_of(st.none(), st.just(""), st.just("  "), st.sampled_from(["a", "b", "c"]), st.text(max_size=6), st.integers(0, 5))


@st.composite
def frames(draw):
    n = draw(st.integers(0, 40))
    ids = draw(st.lists(_id, min_size=n, max_size=n))
    cols = {"application_id": pd.Series(ids, dtype=object)}
    for c in ("x", "y"):
        kind = draw(st.sampled_from(["float", "mixed", "bool", "int"]))
        if kind == "float":
            cols[c] = pd.Series(draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)), dtype="float64")
        elif kind == "bool":
            cols[c] = pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        elif kind == "int":
            cols[c] = pd.Series(draw(st.lists(st.integers(-(2**60), 2**60), min_size=n, max_size=n)), dtype="int64")
        else:
            cols[c] = pd.Series(draw(st.lists(_cell, min_size=n, max_size=n)), dtype=object)
    cols["industry"] = pd.Series(draw(st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=n, max_size=n)), dtype=object)
    frame = pd.DataFrame(cols)
    start = draw(st.integers(0, 1000))
    frame.index = pd.RangeIndex(start, start + n)  # a chunk's index need not start at 0
    return frame


@settings(max_examples=200, **SETTINGS)
@given(frame=frames(), offset=st.integers(0, 10**6), seen=st.sets(st.sampled_from(["a", "b", "0"]), max_size=2))
def test_validate_chunk_accounts_for_every_row(frame, offset, seen):
    seen_before = set(seen)
    res = validate_chunk(frame, ["x", "y"], ["industry"], {"x": 0.0}, IdLedger(seen), offset)
    n = len(frame)
    assert len(res.clean) + len(res.rejects) == n
    rows = res.rejects["row"].to_numpy()
    assert len(set(rows)) == len(rows) and ((rows >= offset) & (rows < offset + n)).all()
    assert set(res.rejects["reject_code"]) <= set(REJECT_REASONS)
    # The clean rows are exactly the rows not rejected, in input order, with finite or missing values in range.
    positions = np.setdiff1d(np.arange(n), rows - offset)
    assert res.clean.index.tolist() == frame.index[positions].tolist()
    v = res.clean[["x", "y"]].to_numpy(dtype="float64")
    assert not np.isinf(v).any() and not (np.abs(v[np.isfinite(v)]) > 1e12).any()
    assert not (res.clean["x"] < 0).any()
    ids = res.clean["application_id"].tolist()
    assert len(set(ids)) == len(ids) and not (set(ids) & seen_before) and all(str(i).strip() for i in ids)


# ---- monotone models stay monotone ------------------------------------------------------------------


@settings(max_examples=4, **SETTINGS)
@given(seed=st.integers(0, 2**16), direction=st.sampled_from([-1, 1]), noise=st.floats(0.5, 3.0))
@pytest.mark.parametrize("name", ["gbm_monotone", "scorecard"])
def test_monotone_models_stay_monotone(name, seed, direction, noise):
    from riskmodel.models import make_model

    rng = np.random.default_rng(seed)
    n = 600
    X = pd.DataFrame({"up": rng.normal(size=n), "other": rng.normal(size=n)})
    X.loc[rng.random(n) < 0.1, "up"] = np.nan
    # The label may even run against the declared direction: the constraint must hold regardless.
    logit = -2 + rng.choice([-1, 1]) * np.nan_to_num(X["up"]) + noise * rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    if y.min() == y.max():
        y[:2] = [0, 1]
    model = make_model(name, directions={"up": direction, "other": 0}).fit(X, y)
    grid = np.linspace(-4, 4, 41)
    base = X.dropna().sample(5, random_state=seed % 1000)
    for _, row in base.iterrows():
        probe = pd.DataFrame({"up": grid, "other": row["other"]})
        pd_ = model.predict_proba(probe)[:, 1]
        steps = np.diff(pd_) * direction
        assert (steps >= -1e-12).all(), f"{name}: PD not monotone in 'up' (direction {direction})"
