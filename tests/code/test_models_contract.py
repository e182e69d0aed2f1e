"""Estimator contract (team contract 4): scikit-learn conformance, validation, contributions, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from riskmodel.creditdata import synthetic_credit
from riskmodel.errors import UserError
from riskmodel.models import (
    MODEL_NAMES,
    FinancialBaseline,
    GBMAdditive,
    GBMMonotone,
    ModelInputError,
    Scorecard,
    make_model,
)

FAST = {"gbm_monotone": {"n_estimators": 60}, "gbm_additive": {"n_estimators": 120}}

# Checks that do not fit our contract, with the reason. All of them feed targets other than {0, 1}
# (labels {1, 2} or strings): our estimators take y in {0, 1} with 1 = default, and refuse other
# labels instead of guessing which one is "default" (sklearn would silently make the larger label
# positive, so "good"/"bad" would model P(good)).
_LABELS_01 = "y must be 0/1 (1 = default); this check fits labels {1, 2} or strings"
EXPECTED_FAILED = {
    "check_estimators_dtypes": _LABELS_01,
    "check_classifier_data_not_an_array": _LABELS_01,
    "check_classifiers_classes": _LABELS_01,
    "check_fit2d_1feature": _LABELS_01,
    # the sample-weight checks below fit labels {1, 2}; tests/code/test_models_weights.py covers what
    # they check (Series, list and wrong-shape weights; weights not modified) with 0/1 labels
    "check_sample_weights_pandas_series": _LABELS_01,
    "check_sample_weights_not_an_array": _LABELS_01,
    "check_sample_weights_shape": _LABELS_01,
    "check_sample_weights_not_overwritten": _LABELS_01,
}


@parametrize_with_checks(
    [FinancialBaseline(), Scorecard(), GBMMonotone(n_estimators=20), GBMAdditive(n_estimators=20)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_conformance(estimator, check):
    check(estimator)


def test_numeric_dtypes_other_than_float64_work():
    """Covers what check_estimators_dtypes would, with 0/1 labels."""
    X, y, d = synthetic_credit(600, 3, seed=1, missing_share=0.0, categorical=False)
    for dtype in ("float32", "int64"):
        Xd = (X * 10).astype(dtype)
        for name in MODEL_NAMES:
            m = make_model(name, directions=d, **FAST.get(name, {})).fit(Xd, y)
            assert m.predict_proba(Xd).shape == (600, 2)


@pytest.fixture(scope="module")
def data():
    X, y, d = synthetic_credit(2500, 6, seed=3)
    Xt, yt, _ = synthetic_credit(800, 6, seed=4)
    return X, y, d, Xt


@pytest.fixture(scope="module")
def fitted(data):
    X, y, d, _ = data
    return {name: make_model(name, directions=d, **FAST.get(name, {})).fit(X, y) for name in MODEL_NAMES}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_contributions_sum_to_the_log_odds(fitted, data, name):
    _, _, _, Xt = data
    m = fitted[name]
    c = m.contributions(Xt)
    assert list(c.columns) == list(m.feature_names_in_)
    assert c.index.equals(Xt.index)
    logit = np.log(m.predict_proba(Xt)[:, 1]) - np.log(m.predict_proba(Xt)[:, 0])
    np.testing.assert_allclose(m.base_value_ + c.sum(axis=1).to_numpy(), logit, atol=1e-6)


def test_gbm_additive_tables_reproduce_the_booster_at_every_threshold(fitted, data):
    m = fitted["gbm_additive"]
    _, _, _, Xt = data
    probe = Xt.copy().reset_index(drop=True)
    probe = pd.concat([probe] * 3, ignore_index=True)
    for j, c in enumerate(m.columns_):
        t = m.shape_thresholds_[j]
        if len(t):  # put values exactly on, just above and just below split thresholds
            k = len(probe) // 3
            vals = np.resize(t, k)
            probe.loc[: k - 1, c] = vals
            probe.loc[k : 2 * k - 1, c] = np.nextafter(vals, np.inf)
            probe.loc[2 * k :, c] = np.resize(np.nextafter(t, -np.inf), len(probe) - 2 * k)
    raw = m.booster_.predict(m._matrix(m._validate(probe)[0]), raw_score=True)
    np.testing.assert_allclose(m.decision_function(probe), raw, atol=1e-9)
    assert m.booster_.num_trees() > 10
    # every tree uses a single feature
    trees = m.booster_.trees_to_dataframe()
    per_tree = trees.dropna(subset=["split_feature"]).groupby("tree_index")["split_feature"].nunique()
    assert per_tree.max() == 1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pickle_round_trip_gives_identical_predictions(fitted, data, name):
    _, _, _, Xt = data
    m = fitted[name]
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.predict_proba(Xt), m.predict_proba(Xt))
    pd.testing.assert_frame_equal(m2.contributions(Xt), m.contributions(Xt))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_columns_are_matched_by_name(fitted, data, name):
    _, _, _, Xt = data
    m = fitted[name]
    shuffled = Xt[list(reversed(Xt.columns))]
    np.testing.assert_array_equal(m.predict_proba(shuffled), m.predict_proba(Xt))
    with pytest.raises(ModelInputError, match=r"Feature names seen at fit time, yet now missing:\n- x0"):
        m.predict_proba(Xt.drop(columns=["x0"]))
    with pytest.raises(ModelInputError, match=r"Feature names unseen at fit time:\n- extra"):
        m.predict_proba(Xt.assign(extra=1.0))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unchecked_contributions_equal_checked_on_a_validated_frame(fitted, data, name):
    """``check_input=False`` (batch scoring, after validate_chunk) skips the checks, never changes
    a number: same contributions, bit for bit, with categoricals as text and missing values."""
    from riskmodel.scoring import validate_chunk

    _, _, _, Xt = data
    m = fitted[name]
    frame = Xt.head(300).copy()
    frame.loc[frame.index[:5], "x1"] = np.nan
    frame.insert(0, "application_id", [f"A{i}" for i in range(len(frame))])
    numeric = [c for c in m.feature_names_in_ if m.kinds_[c] == "numeric"]
    categorical = [c for c in m.feature_names_in_ if m.kinds_[c] == "categorical"]
    clean = validate_chunk(frame, numeric, categorical, {}, None, 0).clean[list(m.feature_names_in_)]
    pd.testing.assert_frame_equal(m.contributions(clean, check_input=False), m.contributions(Xt.head(300).assign(x1=frame["x1"])), check_exact=True)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unseen_categories_and_missing_values_are_scored(fitted, data, name):
    _, _, _, Xt = data
    m = fitted[name]
    odd = Xt.head(4).copy()
    odd["sector"] = ["never_seen", None, "rare", "a"]
    odd.loc[odd.index[0], "x1"] = np.nan
    p = m.predict_proba(odd)[:, 1]
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_bad_inputs_raise_clear_errors(data):
    X, y, d, _ = data
    m = Scorecard(directions=d)
    with pytest.raises(ModelInputError, match="y must be 0 .no default. or 1 .default., found values \\[0, 2\\]"):
        m.fit(X, y * 2)
    with pytest.raises(ModelInputError, match="y has only one class"):
        m.fit(X, np.zeros(len(X), dtype=int))
    with pytest.raises(ModelInputError, match="Only binary classification is supported"):
        m.fit(X, np.arange(len(X)) % 3)
    with pytest.raises(ModelInputError, match="y has 10 values but X has 2500 rows"):
        m.fit(X, y[:10])
    with pytest.raises(ModelInputError, match="columns \\['x0'\\] are missing in every training row; drop them"):
        m.fit(X.assign(x0=np.nan), y)
    with pytest.raises(ModelInputError, match="column 'x1' has infinite values at rows \\[0\\]"):
        m.fit(X.assign(x1=np.r_[np.inf, X["x1"].to_numpy()[1:]]), y)
    with pytest.raises(ModelInputError, match="directions must be -1, 0 or \\+1"):
        Scorecard(directions={"x0": 5}).fit(X, y)
    fitted = Scorecard(directions=d).fit(X, y)
    bad = X.head(3).astype({"x0": object})
    bad.loc[bad.index[1], "x0"] = "n/a"
    with pytest.raises(ModelInputError, match="column 'x0' was numeric in training but has non-numeric values \\['n/a'\\] at rows \\[1\\]"):
        fitted.predict_proba(bad)
    with pytest.raises(ModelInputError, match="X has 0 rows"):
        fitted.predict_proba(X.head(0))
    # input errors are user errors: the CLI prints them on one line
    assert issubclass(ModelInputError, UserError) and issubclass(ModelInputError, ValueError)


def test_make_model_names_and_parameters():
    for name in MODEL_NAMES:
        m = make_model(name, directions={"a": 1})
        assert m.directions == {"a": 1}
    with pytest.raises(ModelInputError, match="unknown model 'xgb'; choose one of: financial_baseline, scorecard, gbm_monotone, gbm_additive"):
        make_model("xgb")
    with pytest.raises(ModelInputError, match="model 'scorecard' has no parameter\\(s\\) \\['num_leaves'\\]"):
        make_model("scorecard", num_leaves=3)
    assert make_model("scorecard", pdo=40).pdo == 40


def test_scorecard_points_follow_pdo_scaling(fitted, data):
    _, _, _, Xt = data
    sc = fitted["scorecard"]
    pts = sc.points(Xt)
    p = sc.predict_proba(Xt)[:, 1]
    odds_good = (1 - p) / p
    # score = offset + factor ln(odds_good), with 600 points at 50:1 and 20 points per doubling
    expected = 600 + 20 * np.log2(odds_good / 50)
    np.testing.assert_allclose(pts["score"], expected, atol=1e-8)
    # doubling the odds adds pdo points: two firms whose good:bad odds differ by 2x differ by 20
    np.testing.assert_allclose(sc.scaling_.score(1 / 101) - sc.scaling_.score(1 / 51), 20 * np.log2(100 / 50))
    t = sc.table()
    assert {"variable", "bin", "count", "event_rate", "woe", "iv", "points"} <= set(t.columns)
    assert t.loc[0, "variable"] == "(base)" and t.loc[0, "points"] == pytest.approx(sc.base_points_)
    assert set(t["variable"][1:]) == set(sc.selected_)
    assert (sc.coef_ > 0).all()  # sign check keeps WoE coefficients positive


def test_baseline_records_sign_conflicts_and_uses_missing_indicators(data):
    X, y, d, _ = data
    flipped = {k: -v for k, v in d.items()}
    m = FinancialBaseline(directions=flipped).fit(X, y)
    assert "x0" in m.sign_conflicts_  # x0 raises risk; the flipped direction says it lowers it
    assert "x0__missing" in m.coef_.index
    assert any(i.startswith("sector=") for i in m.coef_.index)


def test_scorecard_from_parts_rebuilds_a_fitted_scorecard(fitted, data):
    _, _, _, Xt = data
    sc = fitted["scorecard"]
    bins = {c: sc.binner_.bins_[c] for c in sc.selected_}
    rebuilt = Scorecard.from_parts(bins, sc.coef_.to_dict(), sc.intercept_, iv=sc.iv_, dropped=sc.dropped_)
    cols = sc.selected_
    np.testing.assert_allclose(rebuilt.predict_proba(Xt[cols]), sc.predict_proba(Xt), atol=1e-12)
    pd.testing.assert_frame_equal(rebuilt.table(), sc.table())
    with pytest.raises(ModelInputError, match="one coefficient per binned feature: .* bins, 1 coefficients"):
        Scorecard.from_parts(bins, [1.0], 0.0)


def test_scorecard_auto_thresholds_follow_the_sample_size(fitted):
    from scipy.stats import chi2

    small = fitted["scorecard"]  # 2,500 rows, ~350 defaults: the conventional settings
    assert small.min_bin_share_ == 0.05
    assert (small.min_iv_ == 0.02).all()
    X, y, d = synthetic_credit(20_000, 6, seed=5)
    big = Scorecard(directions=d).fit(X, y)
    events = y.sum()
    assert big.min_bin_share_ == pytest.approx(max(0.02, min(0.05, 100 / events)))
    k = int((big.binner_.bins_["x0"].count > 0).sum())
    npq = len(y) * (events / len(y)) * (1 - events / len(y))
    assert big.min_iv_["x0"] == pytest.approx(min(0.02, chi2.ppf(0.999, k - 1) / npq))
    assert big.min_iv_.max() < 0.02
    assert Scorecard(min_iv=0.05, directions=d).fit(X, y).min_iv_.eq(0.05).all()
    with pytest.raises(ModelInputError, match="min_bin_share must be 'auto' or a share in \\(0, 0.5\\)"):
        Scorecard(min_bin_share=2).fit(X, y)


def test_scorecard_best_bin_reference_gives_points_below_maximum(data):
    X, y, d, Xt = data
    best = Scorecard(directions=d, reference="best").fit(X, y)
    neutral = Scorecard(directions=d).fit(X, y)
    c = best.contributions(Xt)[best.selected_]
    assert (c.to_numpy() >= -1e-12).all()  # nothing scores better than the best bin
    np.testing.assert_allclose(best.predict_proba(Xt), neutral.predict_proba(Xt), atol=1e-12)  # same model
    np.testing.assert_allclose(best.base_value_ + c.sum(axis=1), best.decision_function(Xt), atol=1e-9)
    with pytest.raises(ModelInputError, match="reference must be 'neutral' or 'best'"):
        Scorecard(reference="worst").fit(X, y)


def test_gbm_additive_tabulates_intervals_next_to_zero_exactly():
    """Regression: LightGBM puts thresholds at +-1e-35 around zero and reads an input of -1e-35 as 0.
    Probing the interval (t, -1e-35] at its upper end tabulated the value at zero for every negative
    value (``RuntimeError: tabulated shapes differ from the booster by 0.0366`` on generated data)."""
    rng = np.random.default_rng(3)
    n = 4000
    X = pd.DataFrame({"growth": rng.uniform(-1, 1, n), "other": rng.normal(size=n)})
    X.loc[rng.random(n) < 0.1, "growth"] = 0.0
    X.loc[rng.random(n) < 0.2, "growth"] = np.nan
    y = (rng.random(n) < np.where(X["growth"].fillna(1) < 0, 0.3, 0.05)).astype(int)  # falling growth: riskier
    m = GBMAdditive(directions={"growth": -1}, n_estimators=60).fit(X, y)
    j = m.columns_.index("growth")
    assert np.isclose(np.abs(m.shape_thresholds_[j]), 1e-35, rtol=1e-6).any()  # the zero-bin edge is used
    probe = pd.DataFrame(
        {"growth": [-1.0, -0.5, -1e-35, -1e-40, 0.0, 1e-40, 1e-35, 0.5, np.nan, *X["growth"][:200]], "other": 0.0}
    )
    raw = m.booster_.predict(m._matrix(m._validate(probe)[0]), raw_score=True)
    np.testing.assert_allclose(m.decision_function(probe), raw, atol=1e-9)
    assert m.contributions(probe.iloc[:2])["growth"].gt(0).all()  # negatives are the risky side


def test_a_category_called_other_keeps_its_own_level_and_bin():
    """credit_data's Home column has a category "other": it is not the pool of rare categories."""
    rng = np.random.default_rng(2)
    n = 3000
    home = rng.choice(["owner", "rent", "other", "rare1", "rare2"], n, p=[0.45, 0.3, 0.23, 0.01, 0.01])
    y = (rng.random(n) < np.where(home == "other", 0.5, 0.1)).astype(int)
    X = pd.DataFrame({"home": home.astype(object), "x": rng.normal(size=n)})
    sc = make_model("scorecard").fit(X, y)
    b = sc.binner_.bins_["home"]
    other_bin = b.category_bin[b.categories.index("other")]
    assert b.labels[other_bin] == "other" and b.labels[b.other_bin] == "(other)" and other_bin != b.other_bin
    assert b.event[other_bin] / b.count[other_bin] > 0.4  # the risky category, not the pool
    fb = make_model("financial_baseline").fit(X, y)
    assert fb.levels_["home"] == ["other", "owner", "rent", "(other)", "(missing)"]
    p = fb.predict_proba(pd.DataFrame({"home": ["other", "rare1", "unseen", None], "x": 0.0}))[:, 1]
    assert p[0] > 0.35 and p[1] == pytest.approx(p[2]) and p[1] < 0.2
