"""riskmodel.explain: importance views, monotonicity check, shapes, one-firm breakdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskmodel import explain
from riskmodel.creditmodel import CreditModel
from riskmodel.creditdata import synthetic_credit
from riskmodel.errors import ScoringError, UserError
from riskmodel.models import make_model


def _catalog(directions: dict[str, int]) -> pd.DataFrame:
    rows = []
    for f, d in directions.items():
        rows.append({"name": f, "name_zh": f"信号{f[1:]}", "name_en": f"Signal {f}", "family": "test", "direction": d,
                     "unit": "count", "reason_en": f"{f} is high", "reason_zh": f"{f}偏高", "actionable": True})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data():
    X, y, directions = synthetic_credit(n_rows=3000, n_features=6, seed=3, categorical=False)
    return X.iloc[:2000], y[:2000], X.iloc[2000:].reset_index(drop=True), y[2000:], directions


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _, directions = data
    return {
        "scorecard": make_model("scorecard", directions=directions).fit(X, y),
        # unconstrained: what the data says, so a wrong declaration can show up
        "gbm_additive": make_model("gbm_additive", n_estimators=150).fit(X, y),
        "financial_baseline": make_model("financial_baseline").fit(X, y),
    }


@pytest.mark.parametrize("model", ["scorecard", "gbm_additive", "financial_baseline"])
def test_importance_views_one_row_per_feature_with_both_names(fitted, data, model):
    X, _, Xt, yt, directions = data
    cat = _catalog(directions)
    views = explain.importance_views(fitted[model], Xt, yt, cat, X_reference=X, n_repeats=2)
    assert set(views) == set(explain.METHODS)
    for method, t in views.items():
        assert sorted(t["feature"]) == sorted(X.columns), method
        assert t["feature"].is_unique
        assert t["name_zh"].tolist() == [f"信号{f[1:]}" for f in t["feature"]]
        assert t["name_en"].tolist() == [f"Signal {f}" for f in t["feature"]]
        assert (np.diff(t["importance"].to_numpy()) <= 0).all(), f"{method} not sorted"
        assert t["rank"].tolist() == list(range(1, len(t) + 1))
    # the strongest true signals (x0: +1, x1: -1) beat the pure-noise ones (x2, x5) out of time
    perm = views["permutation"].set_index("feature")["importance"]
    assert min(perm["x0"], perm["x1"]) > max(perm["x2"], perm["x5"])
    summary = explain.importance_summary(views)
    assert len(summary) == X.shape[1] and {"rank_model", "rank_contribution", "rank_permutation"} <= set(summary.columns)


def test_contribution_importance_matches_mean_abs_contribution(fitted, data):
    X, *_ = data
    est = fitted["gbm_additive"]
    imp = explain.contribution_importance(est, X, max_rows=None)
    np.testing.assert_allclose(imp.to_numpy(), est.contributions(X).abs().mean().to_numpy())


def test_monotonicity_flags_a_deliberately_wrong_declaration(fitted, data):
    X, _, _, _, directions = data
    wrong = dict(directions, x0=-1)  # x0 raises PD in the data; declare that it lowers it
    for model in ("gbm_additive", "financial_baseline"):
        t = explain.monotonicity(fitted[model], X, _catalog(wrong)).set_index("feature")
        assert t.loc["x0", "status"] == "contradiction", (model, t.loc["x0"].to_dict())
        assert t.loc["x0", "shown"] == 1 and t.loc["x0", "declared"] == -1
        assert t.loc["x1", "status"] in ("ok", "non_monotone"), (model, t.loc["x1"].to_dict())  # declared -1, correct
        assert t.loc["x1", "shown"] == -1
        assert (t["status"] == "contradiction").sum() == 1
        assert t.loc["x0", "name_zh"] == "信号0"
    right = explain.monotonicity(fitted["gbm_additive"], X, _catalog(directions))
    assert "contradiction" not in set(right["status"])
    linear = explain.monotonicity(fitted["financial_baseline"], X, _catalog(directions)).set_index("feature")
    assert linear.loc[["x0", "x1", "x3", "x4"], "status"].eq("ok").all()  # a linear model is monotone


def test_monotonicity_directions_argument_overrides_catalog(fitted, data):
    X, _, _, _, directions = data
    t = explain.monotonicity(fitted["gbm_additive"], X, _catalog(directions), directions=dict(directions, x1=1))
    assert t.set_index("feature").loc["x1", "status"] == "contradiction"


def test_scorecard_shape_is_its_points_table(fitted, data):
    X, *_ = data
    sc = fitted["scorecard"]
    f = sc.selected_[0]
    s = explain.shape(sc, f, X)
    table = sc.table()
    np.testing.assert_allclose(s["points"].to_numpy(), table.loc[table["variable"] == f, "points"].to_numpy())
    np.testing.assert_allclose(s["contribution"].to_numpy(), -s["points"].to_numpy() / sc.scaling_.factor)
    assert (s["kind"] == "scorecard_bins").all()


def test_gbm_additive_shape_counts_every_row_and_curve_for_others(fitted, data):
    X, *_ = data
    s = explain.shape(fitted["gbm_additive"], "x0", X)
    assert s["count"].sum() == len(X)
    assert s["bin"].iloc[-1] == "Missing"
    c = explain.shape(fitted["financial_baseline"], "x0", X, n_bins=5)
    assert (c["kind"] == "contribution_curve").all()
    assert c["count"].sum() == len(X)
    assert c["points"].iloc[0] > c["points"].iloc[-2]  # x0 raises PD: fewer points at high values
    with pytest.raises(UserError, match="not in the model"):
        explain.shape(fitted["gbm_additive"], "nope", X)


@pytest.mark.parametrize("model", ["scorecard", "gbm_additive"])
def test_explain_row_adds_up_to_score_and_pd(fitted, data, model):
    X, _, Xt, _, directions = data
    cm = CreditModel.from_estimator(fitted[model], catalog=_catalog(directions), suppress=())
    row = Xt.iloc[[7]]
    header, t = explain.explain_row(cm, row)
    pred = cm.predict(row).iloc[0]
    assert header["score"] == pytest.approx(pred["score"])
    assert header["base_points"] + t["points"].sum() == pytest.approx(header["score"], abs=1e-6)
    logit = header["base_value"] + t["contribution"].sum()
    assert 1 / (1 + np.exp(-logit)) == pytest.approx(header["pd"], rel=1e-9)
    assert len(t) == X.shape[1] and (np.diff(t["contribution"].to_numpy()) <= 0).all()
    assert t.loc[t["feature"] == "x3", "value"].iloc[0] == row["x3"].iloc[0] or np.isnan(row["x3"].iloc[0])
    with pytest.raises(UserError, match="exactly one row"):
        explain.explain_row(cm, Xt.iloc[:2])


def test_format_breakdown_aligns_chinese_names():
    t = pd.DataFrame({"feature": ["a", "bb"], "name_zh": ["营业收入", "资产负债率高"], "name_en": ["Revenue", "Leverage"],
                      "value": [1.5, np.nan], "contribution": [0.2, -0.1], "points": [-5.8, 2.9]})
    lines = explain.format_breakdown(t).splitlines()
    assert len(lines) == 4 and "missing" in lines[3]
    # the English name starts at the same display column on every line (CJK counts two columns)
    starts = [explain._width(line[: line.index(word)]) for line, word in zip(lines[2:], ["Revenue", "Leverage"])]
    assert starts[0] == starts[1] == explain._width(lines[0][: lines[0].index("signal")])


def test_names_fall_back_to_column_names():
    t = explain.names(["x0", "zz"], _catalog({"x0": 1}))
    assert t["name_en"].tolist() == ["Signal x0", "zz"] and t["direction"].tolist() == [1, 0]


def test_precomputed_contributions_give_the_same_tables(fitted, data):
    X, _, Xt, yt, directions = data
    est, cat = fitted["gbm_additive"], _catalog(directions)
    C = est.contributions(X)
    pd.testing.assert_frame_equal(explain.monotonicity(est, X, cat, max_rows=None), explain.monotonicity(est, X, cat, contrib=C))
    a = explain.importance_views(est, Xt, yt, cat, X_reference=X, max_rows=None, n_repeats=1)
    b = explain.importance_views(est, Xt, yt, cat, X_reference=X, contrib=C, n_repeats=1)
    for m in explain.METHODS:
        pd.testing.assert_frame_equal(a[m], b[m])
    pd.testing.assert_frame_equal(explain.shape(fitted["financial_baseline"], "x0", X, max_rows=None),
                                  explain.shape(fitted["financial_baseline"], "x0", X, contrib=fitted["financial_baseline"].contributions(X)))


def test_explain_row_without_a_feature_the_scorecard_does_not_use(fitted, data):
    X, _, Xt, _, directions = data
    cm = CreditModel.from_estimator(fitted["scorecard"], catalog=_catalog(directions), suppress=())
    unused = [c for c in cm.features if c not in cm.used_features]
    row = Xt.iloc[[7]]
    assert unused == ["x5"]  # x5 carries no signal in this data: the scorecard leaves it out
    full, _ = explain.explain_row(cm, row)
    header, t = explain.explain_row(cm, row.drop(columns=unused))
    assert header["score"] == pytest.approx(full["score"])
    assert t.loc[t["feature"].isin(unused), "contribution"].eq(0).all()
    with pytest.raises(ScoringError, match="missing from the input"):
        explain.explain_row(cm, row.drop(columns=cm.used_features[:1]))
