"""Unit tests of the monotonic WoE binning (riskmodel/binning.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel.binning import MISSING_LABEL, OTHER_LABEL, BinningError, MonotonicBinner


def _data(n=3000, seed=0, slope=1.0, missing=0.05):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-1.5 + slope * x)))
    y = (rng.random(n) < p).astype(int)
    x[rng.random(n) < missing] = np.nan
    return pd.DataFrame({"x": x}), y


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), slope=st.floats(-2, 2), direction=st.sampled_from([1, -1]))
def test_woe_is_monotone_in_the_declared_direction(seed, slope, direction):
    X, y = _data(n=1500, seed=seed, slope=slope)
    b = MonotonicBinner(directions={"x": direction}).fit(X, y)
    vb = b.bins_["x"]
    woe = vb.woe[:-1]  # without the missing bin
    assert vb.direction == direction
    if direction == 1:
        assert np.all(np.diff(woe) > 0)
    else:
        assert np.all(np.diff(woe) < 0)
    # transform agrees with the table: WoE is monotone in the raw value too
    grid = pd.DataFrame({"x": np.linspace(-4, 4, 401)})
    w = b.transform(grid)["x"].to_numpy()
    assert np.all(np.diff(w) * direction >= 0)


def test_bins_respect_min_share_and_prebins():
    X, y = _data(n=5000, seed=1, slope=1.5, missing=0.0)
    b = MonotonicBinner(directions={"x": 1}, max_prebins=20, min_bin_share=0.05).fit(X, y)
    t = b.table()
    real = t[t["bin"] != MISSING_LABEL]
    assert (real["count"] >= 0.05 * 5000).all()
    assert 2 <= len(real) <= 20
    assert real["count"].sum() == 5000


def test_missing_values_get_their_own_bin_and_unseen_missing_is_neutral():
    X, y = _data(n=4000, seed=2, missing=0.1)
    y = y.copy()
    y[X["x"].isna().to_numpy()] = 1  # missing is very risky here
    b = MonotonicBinner(directions={"x": 1}).fit(X, y)
    t = b.table()
    miss = t[t["bin"] == MISSING_LABEL].iloc[0]
    assert miss["count"] == X["x"].isna().sum()
    assert miss["woe"] == t["woe"].max()
    assert b.transform(pd.DataFrame({"x": [np.nan]}))["x"].iloc[0] == pytest.approx(miss["woe"])
    # a variable without missing values in training scores a missing value as WoE 0
    X2, y2 = _data(n=2000, seed=3, missing=0.0)
    b2 = MonotonicBinner(directions={"x": 1}).fit(X2, y2)
    assert b2.transform(pd.DataFrame({"x": [np.nan]}))["x"].iloc[0] == 0.0


def test_woe_and_iv_match_their_definition_with_smoothing():
    X = pd.DataFrame({"x": np.repeat([0.0, 1.0, 2.0], 100)})
    y = np.r_[np.zeros(100), np.r_[np.ones(20), np.zeros(80)], np.r_[np.ones(60), np.zeros(40)]].astype(int)
    b = MonotonicBinner(directions={"x": 1}, smoothing=0.5, min_bin_share=0.05).fit(X, y)
    t = b.table()
    real = t[t["bin"] != MISSING_LABEL]
    ev = np.array([0, 20, 60]) + 0.5
    ne = np.array([100, 80, 40]) + 0.5
    # smoothing adds 0.5 to every bin, including the (empty) missing bin: 4 bins
    e_share = ev / (80 + 0.5 * 4)
    n_share = ne / (220 + 0.5 * 4)
    woe = np.log(e_share / n_share)
    np.testing.assert_allclose(real["woe"], woe)
    assert np.isfinite(real["woe"]).all()  # the bin with no defaults still has a finite WoE
    np.testing.assert_allclose(b.iv()["x"], np.sum((e_share - n_share) * woe))


def test_unknown_direction_auto_picks_the_better_monotone_fit_and_free_keeps_shape():
    X, y = _data(n=4000, seed=4, slope=-1.2, missing=0.0)
    b = MonotonicBinner(directions={}).fit(X, y)
    assert b.bins_["x"].direction == -1
    # U shape: risk high at both ends; "free" keeps a non-monotone WoE, "auto" cannot
    rng = np.random.default_rng(5)
    x = rng.normal(size=6000)
    y_u = (rng.random(6000) < 1 / (1 + np.exp(-(-2 + 1.5 * x**2)))).astype(int)
    Xu = pd.DataFrame({"x": x})
    free = MonotonicBinner(unknown_direction="free").fit(Xu, y_u).bins_["x"].woe[:-1]
    auto = MonotonicBinner(unknown_direction="auto").fit(Xu, y_u).bins_["x"].woe[:-1]
    assert not (np.all(np.diff(free) > 0) or np.all(np.diff(free) < 0))
    assert np.all(np.diff(auto) > 0) or np.all(np.diff(auto) < 0)


def test_categorical_bins_group_rare_levels_and_map_unseen_to_other():
    rng = np.random.default_rng(6)
    n = 4000
    cat = rng.choice(["low", "mid", "high", "rare1", "rare2"], size=n, p=[0.45, 0.35, 0.18, 0.01, 0.01])
    rate = pd.Series(cat).map({"low": 0.05, "mid": 0.15, "high": 0.4, "rare1": 0.3, "rare2": 0.3}).to_numpy()
    y = (rng.random(n) < rate).astype(int)
    X = pd.DataFrame({"c": cat.astype(object)})
    X.loc[:9, "c"] = None
    b = MonotonicBinner(min_category_share=0.02).fit(X, y)
    t = b.table()
    labels = t["bin"].tolist()
    assert labels[-1] == MISSING_LABEL
    assert OTHER_LABEL in labels and "rare1" not in labels
    real = t[t["bin"] != MISSING_LABEL]
    assert list(real["bin"][:3]) == ["low", "mid", "high"][: 3] or np.all(np.diff(real["woe"]) >= 0)
    assert np.all(np.diff(real["woe"].to_numpy()) >= 0)  # ordered by risk
    w = b.transform(pd.DataFrame({"c": ["rare1", "never_seen", "low", None]}))["c"].to_numpy()
    other_woe = t.loc[t["bin"] == OTHER_LABEL, "woe"].iloc[0]
    assert w[0] == pytest.approx(other_woe) and w[1] == pytest.approx(other_woe)
    assert w[2] == pytest.approx(t.loc[t["bin"] == "low", "woe"].iloc[0])
    assert w[3] == pytest.approx(t.loc[t["bin"] == MISSING_LABEL, "woe"].iloc[0])


def test_table_has_the_credit_columns():
    X, y = _data(n=1000, seed=7)
    t = MonotonicBinner(directions={"x": 1}).fit(X, y).table()
    assert list(t.columns) == ["variable", "bin", "count", "count_share", "event", "event_rate", "woe", "iv"]
    assert t["count_share"].sum() == pytest.approx(1.0)


def test_transform_is_vectorised_and_matches_bin_lookup():
    X, y = _data(n=2000, seed=8)
    b = MonotonicBinner(directions={"x": 1}).fit(X, y)
    big = pd.DataFrame({"x": np.random.default_rng(9).normal(size=200_000)})
    idx = b.bin_indices(big)["x"].to_numpy()
    w = b.transform(big)["x"].to_numpy()
    np.testing.assert_array_equal(w, b.bins_["x"].woe[idx])


def test_bad_inputs_say_what_to_do():
    X, y = _data(n=200, seed=10)
    with pytest.raises(BinningError, match="0 .non-default. and 1 .default."):
        MonotonicBinner().fit(X, y * 2)
    with pytest.raises(BinningError, match="direction of 'x' must be -1, 0 or \\+1"):
        MonotonicBinner(directions={"x": 2}).fit(X, y)
    with pytest.raises(BinningError, match="unknown_direction must be 'auto' or 'free'"):
        MonotonicBinner(unknown_direction="u").fit(X, y)
    b = MonotonicBinner().fit(X, y)
    with pytest.raises(BinningError, match="columns missing from X: \\['x'\\]"):
        b.transform(pd.DataFrame({"z": [1.0]}))
    with pytest.raises(BinningError, match="not fitted yet"):
        MonotonicBinner().transform(X)
