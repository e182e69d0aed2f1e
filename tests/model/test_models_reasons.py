"""Reason codes, master scale, PDO scaling and the CreditModel package (contract 5)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from riskmodel.creditmodel import CreditModel, output_columns
from riskmodel.creditdata import synthetic_credit
from riskmodel.errors import UserError
from riskmodel.grades import MasterScale, PDOScaling, doubling_ladder
from riskmodel.models import MODEL_NAMES, make_model
from riskmodel.reasons import reason_codes, reason_columns, top_reasons


def _reference_top(row: np.ndarray, names: list[str], suppress, k: int) -> list[str | None]:
    """Row-by-row reference implementation (fine for a test)."""
    cands = [(v, n) for v, n in zip(row, names) if n not in suppress and np.isfinite(v) and v > 0]
    cands.sort(key=lambda t: -t[0])
    top = [n for _, n in cands[:k]]
    return top + [None] * (k - len(top))


@settings(max_examples=40, deadline=None)
@given(
    C=arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(1, 8)),
        elements=st.one_of(st.floats(-5, 5, allow_subnormal=False), st.just(np.nan)),
        unique=False,
    ),
    k=st.integers(1, 4),
    n_suppress=st.integers(0, 3),
)
def test_reasons_are_the_top_positive_unsuppressed_contributions(C, k, n_suppress):
    names = [f"f{j}" for j in range(C.shape[1])]
    suppress = names[:n_suppress]
    contrib = pd.DataFrame(C, columns=names)
    out = reason_codes(contrib, None, suppress=suppress, k=k)
    assert list(out.columns) == reason_columns(k)
    for i in range(len(C)):
        expected = _reference_top(C[i], names, suppress, k)
        got = [out.iloc[i][f"reason_{r + 1}"] for r in range(k)]
        got = [None if (g is None or (isinstance(g, float) and np.isnan(g))) else g for g in got]
        # ties may come in either order: compare the contribution values, then the sets
        vals_e = [C[i, names.index(n)] if n else None for n in expected]
        vals_g = [C[i, names.index(n)] if n else None for n in got]
        assert vals_g == vals_e
        assert not set(filter(None, got)) & set(suppress)


@settings(max_examples=60, deadline=None)
@given(
    base=arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 70)), elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])),
    nudge=st.integers(-3, 3),
    k=st.integers(1, 4),
)
def test_reason_order_is_exact_on_ties_and_near_ties(base, nudge, k):
    """Exact and near ties (values one to three ulps apart) give the stable-sort order: larger
    value first, the earlier column on an exact tie. The fast pass packs column codes into the
    lowest bits, so this is where it could go wrong."""
    import riskmodel.reasons as reasons

    C = base.copy()
    for _ in range(abs(nudge)):  # every third column moves one ulp up or down per step
        C[:, ::3] = np.nextafter(C[:, ::3], np.copysign(np.inf, nudge))
    ref = np.where(C > 0, -C, np.inf)
    order = np.argsort(ref, axis=1, kind="stable")[:, :k]
    expected = np.where(np.take_along_axis(C > 0, order, axis=1), order, -1)
    old = reasons._BLOCK_ROWS
    reasons._BLOCK_ROWS = 7  # several blocks, including a short last one
    try:
        idx, vals = top_reasons(pd.DataFrame(C), k=k)
    finally:
        reasons._BLOCK_ROWS = old
    if k > C.shape[1]:
        expected = np.pad(expected, ((0, 0), (0, k - C.shape[1])), constant_values=-1)
    np.testing.assert_array_equal(idx, expected)
    assert np.all(np.where(idx >= 0, vals > 0, vals == -np.inf))


def test_reason_texts_come_from_the_catalog_with_name_fallback():
    contrib = pd.DataFrame({"elec": [2.0, -1.0], "age": [1.0, -1.0], "byo": [0.5, -2.0]}, index=[10, 11])
    catalog = pd.DataFrame(
        {
            "name": ["elec", "age"],
            "reason_en": ["Electricity use fell year on year", ""],
            "reason_zh": ["用电量同比下降", "企业成立时间短"],
        }
    )
    out = reason_codes(contrib, catalog, k=3)
    assert out.index.tolist() == [10, 11]
    row = out.loc[10]
    assert (row["reason_1"], row["reason_2"], row["reason_3"]) == ("elec", "age", "byo")
    assert row["reason_1_en"] == "Electricity use fell year on year" and row["reason_1_zh"] == "用电量同比下降"
    assert row["reason_2_en"] == "age" and row["reason_2_zh"] == "企业成立时间短"  # empty text -> name
    assert row["reason_3_en"] == "byo" and row["reason_3_zh"] == "byo"  # no catalog row -> name
    assert out.loc[11, reason_columns(3)].isna().all()  # nothing raises this firm's risk


def test_reasons_are_vectorised_over_a_large_batch():
    rng = np.random.default_rng(0)
    C = pd.DataFrame(rng.normal(size=(200_000, 40)), columns=[f"f{j}" for j in range(40)])
    idx, vals = top_reasons(C, k=3, suppress=["f0"])
    assert idx.shape == (200_000, 3)
    assert (idx != 0).all()
    assert np.all(vals[:, 0] >= vals[:, 1]) and np.all(vals[:, 1] >= vals[:, 2])
    row = C.to_numpy()[123]
    assert idx[123, 0] == 1 + np.argmax(row[1:])


def test_pdo_scaling():
    s = PDOScaling()  # 600 points at good:bad odds 50:1, 20 points to double the odds
    assert s.score(1 / 51) == pytest.approx(600)
    assert s.score(1 / 101) == pytest.approx(600 + 20 * np.log2(100 / 50))
    assert s.score(1 / 26) == pytest.approx(580)
    p = np.array([0.001, 0.02, 0.3, 0.9])
    np.testing.assert_allclose(s.pd(s.score(p)), p)
    assert np.all(np.diff(s.score(p)) < 0)
    with pytest.raises(UserError, match="pdo > 0"):
        PDOScaling(pdo=0)


def test_master_scale_is_monotone_and_stored_as_data():
    ms = MasterScale()
    assert ms.labels == tuple(f"R{k}" for k in range(1, 11))
    assert ms.bounds == doubling_ladder() and ms.bounds[0] == 0.001 and ms.bounds[-1] == pytest.approx(0.256)
    p = np.sort(np.random.default_rng(0).uniform(0, 1, 10_000) ** 4)
    g = ms.grade_index(p)
    assert np.all(np.diff(g) >= 0) and g.min() == 0 and g.max() == 9
    assert ms.grade([0.0005, 0.001, 0.3, np.nan]).tolist() == ["R1", "R2", "R10", None]
    assert MasterScale.from_dict(json.loads(json.dumps(ms.to_dict()))) == ms
    t = ms.table(PDOScaling())
    assert list(t["grade"]) == list(ms.labels) and np.all(np.diff(t["score_min"]) < 0)
    with pytest.raises(UserError, match="boundaries must increase strictly"):
        MasterScale(bounds=(0.1, 0.05), labels=("a", "b", "c"))
    with pytest.raises(UserError, match="needs 3 labels"):
        MasterScale(bounds=(0.01, 0.05), labels=("a", "b"))


@pytest.fixture(scope="module")
def fitted():
    X, y, d = synthetic_credit(2500, 6, seed=21)
    Xt, _, _ = synthetic_credit(500, 6, seed=22)
    Xt.index = Xt.index + 1000  # a non-default index must be kept
    fast = {"gbm_monotone": {"n_estimators": 60}, "gbm_additive": {"n_estimators": 120}}
    models = {n: make_model(n, directions=d, **fast.get(n, {})).fit(X, y) for n in MODEL_NAMES}
    catalog = pd.DataFrame(
        {
            "name": [f"x{j}" for j in range(6)] + ["sector"],
            "reason_en": [f"signal {j} is weak" for j in range(6)] + ["sector risk"],
            "reason_zh": [f"信号{j}偏弱" for j in range(6)] + ["行业风险"],
            "actionable": [True] * 6 + [False],
            "direction": [d[f"x{j}"] for j in range(6)] + [0],
            "unused": 0,
        }
    )
    return models, catalog, Xt


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_credit_model_predict(fitted, name):
    models, catalog, Xt = fitted
    cm = CreditModel.from_estimator(models[name], catalog=catalog, name=name)
    assert cm.suppress == ("sector",)  # non-actionable in the catalog
    assert set(cm.catalog.columns) <= {"name", "reason_en", "reason_zh", "actionable", "direction", "unit"}
    out = cm.predict(Xt.assign(extra_column="ignored"))
    assert list(out.columns) == output_columns()
    assert out.index.equals(Xt.index)
    np.testing.assert_allclose(out["pd"], models[name].predict_proba(Xt)[:, 1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cm.predict_pd(Xt), out["pd"], rtol=1e-12)
    np.testing.assert_allclose(out["score"], PDOScaling().score(out["pd"]), rtol=1e-9)
    assert out["grade"].tolist() == MasterScale().grade(out["pd"]).tolist()
    assert not (out[["reason_1", "reason_2", "reason_3"]] == "sector").any().any()
    contrib = models[name].contributions(Xt)
    first = out["reason_1"].dropna()
    # reason_1 is each firm's largest positive contribution among actionable features
    top = contrib.drop(columns=["sector"]).idxmax(axis=1)
    assert (first == top[first.index]).all()
    en = dict(zip(catalog["name"], catalog["reason_en"]))
    assert (out.loc[first.index, "reason_1_en"] == first.map(en)).all()
    json.dumps(cm.config())


@pytest.mark.parametrize("name", ["scorecard", "gbm_additive"])
def test_credit_model_pickles(fitted, name):
    import cloudpickle

    models, catalog, Xt = fitted
    cm = CreditModel.from_estimator(models[name], catalog=catalog, suppress=[])
    a = cm.predict(Xt)
    for mod in (pickle, cloudpickle):
        pd.testing.assert_frame_equal(mod.loads(mod.dumps(cm)).predict(Xt), a)


def test_credit_model_rejects_bad_configuration(fitted):
    models, catalog, _ = fitted
    with pytest.raises(UserError, match="suppress lists features the model does not use: \\['nope'\\]"):
        CreditModel.from_estimator(models["scorecard"], suppress=["nope"])
    with pytest.raises(UserError, match="needs a fitted riskmodel estimator"):
        CreditModel.from_estimator(make_model("scorecard"))
    with pytest.raises(UserError, match="catalog needs a 'name' column"):
        CreditModel.from_estimator(models["scorecard"], catalog=catalog.drop(columns=["name"]))


def test_input_spec_tells_scoring_what_to_validate(fitted):
    models, catalog, _ = fitted
    spec = CreditModel.from_estimator(models["gbm_additive"]).input_spec()
    assert spec["categorical"] == ["sector"]
    assert spec["numeric"] == [f"x{j}" for j in range(6)]
    # no catalog: non-negative in training (lognormal draws) -> lower bound 0
    assert spec["lower_bounds"] == {f"x{j}": 0.0 for j in range(6)}
    # the catalog's declared lower_bound decides; NaN (a signed quantity) means none, whatever the training range
    declared = catalog.assign(
        unit=["relative change", "CNY 10k (万元)", "share of revenue", "ratio", "months", "people", ""],
        lower_bound=[np.nan, 0.0, np.nan, 1.0, 0.0, np.nan, np.nan],
    )
    spec = CreditModel.from_estimator(models["gbm_additive"], catalog=declared).input_spec()
    assert spec["lower_bounds"] == {"x1": 0.0, "x3": 1.0, "x4": 0.0}
    # a unit is only text: renaming units changes no bound
    renamed = declared.assign(unit=["months", "ratio to revenue (signed)", "0/1", "share", "relative change", "", "people"])
    assert CreditModel.from_estimator(models["gbm_additive"], catalog=renamed).input_spec()["lower_bounds"] == spec["lower_bounds"]
    # catalog rows without a lower_bound column (bring-your-own, or a model saved before catalogs had one):
    # the training-range rule, units ignored
    old = declared.drop(columns=["lower_bound"])
    assert CreditModel.from_estimator(models["gbm_additive"], catalog=old).input_spec()["lower_bounds"] == {f"x{j}": 0.0 for j in range(6)}


def test_a_model_saved_before_lower_bounds_loads_and_scores(fitted):
    """A CreditModel pickled when catalogs had no lower_bound column still scores and validates."""
    models, catalog, Xt = fitted
    cm = CreditModel.from_estimator(models["scorecard"], catalog=catalog.assign(unit="ratio"))
    assert "lower_bound" not in cm.catalog.columns
    loaded = pickle.loads(pickle.dumps(cm))
    spec = loaded.input_spec()
    ranges = models["scorecard"].feature_range_
    assert spec["lower_bounds"] == {c: 0.0 for c in spec["numeric"] if ranges[c][0] >= 0} and spec["lower_bounds"]
    pd.testing.assert_frame_equal(loaded.predict(Xt), cm.predict(Xt))
