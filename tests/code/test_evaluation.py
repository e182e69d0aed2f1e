"""Evaluation metrics against scikit-learn and hand-computed values; PSI; OOT split; segments; grades."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from riskmodel import evaluation as ev


@pytest.fixture
def yp():
    rng = np.random.default_rng(7)
    n = 2000
    p = rng.beta(1, 12, n)
    y = (rng.random(n) < p).astype(int)
    return y, p


def test_auc_gini_brier_logloss_match_sklearn(yp):
    y, p = yp
    assert ev.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert ev.gini(y, p) == pytest.approx(2 * skm.roc_auc_score(y, p) - 1, abs=1e-12)
    assert ev.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert ev.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), abs=1e-9)


def test_auc_with_ties_matches_sklearn():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.9])
    assert ev.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


def test_ks_hand_value_and_against_roc(yp):
    # Hand case: goods at 0.1, 0.2; bads at 0.3, 0.4 -> perfect separation, KS = 1.
    assert ev.ks([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    # Interleaved: bads 0.4, 0.2; goods 0.3, 0.1 -> max |TPR - FPR| = 0.5.
    assert ev.ks([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1]) == pytest.approx(0.5)
    y, p = yp
    fpr, tpr, _ = skm.roc_curve(y, p)
    assert ev.ks(y, p) == pytest.approx(np.max(tpr - fpr), abs=1e-12)


def test_one_class_gives_nan_auc_and_bad_labels_raise():
    assert np.isnan(ev.auc([0, 0, 0], [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="only 0 \\(good\\) and 1 \\(bad\\)"):
        ev.auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        ev.auc([0, 1], [0.1, 0.2, 0.3])


def test_calibration_table_and_ece(yp):
    y, p = yp
    t = ev.calibration_table(y, p, n_bins=10)
    assert len(t) == 10
    assert t["count"].sum() == len(y)
    assert t["bads"].sum() == y.sum()
    assert (np.diff(t["mean_pd"]) > 0).all()
    # ECE by hand from the table
    w = t["count"] / t["count"].sum()
    assert ev.expected_calibration_error(y, p) == pytest.approx(float((w * (t["mean_pd"] - t["observed_rate"]).abs()).sum()))
    # Outcomes drawn from p are calibrated: small ECE; shifting PD by +0.05 adds about 0.05.
    assert ev.expected_calibration_error(y, p) < 0.02
    assert ev.expected_calibration_error(y, np.clip(p + 0.05, 0, 1)) > 0.04


def test_psi_identical_is_zero_and_known_shift():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=20000)
    assert ev.psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    # Two halves by the median, current 75/25: PSI = (0.75-0.5) ln(1.5) + (0.25-0.5) ln(0.5)
    cur = np.r_[np.full(750, -1.0), np.full(250, 1.0)]
    expected = 0.25 * np.log(1.5) + 0.25 * np.log(2.0)
    assert ev.psi(ref, cur, n_bins=2) == pytest.approx(expected, rel=1e-2)
    # A mean shift of one standard deviation is a big drift ('act'); a small sample of the same law is 'stable'.
    assert ev.psi_band(ev.psi(ref, ref + 1.0)) == "act"
    assert ev.psi_band(ev.psi(ref, rng.normal(size=5000))) == "stable"


def test_psi_missing_bin_and_empty_bins_finite():
    ref = np.r_[np.arange(100.0), [np.nan] * 10]
    cur = np.r_[np.arange(100.0), [np.nan] * 60]
    t = ev.psi_table(ref, cur, n_bins=4)
    miss = t.loc[t["bin"] == ev.MISSING_BIN].iloc[0]
    assert miss["ref_count"] == 10 and miss["cur_count"] == 60
    assert miss["psi"] > 0
    # All current values above the reference range: empty bins get epsilon, PSI stays finite and large.
    t2 = ev.psi_table(np.arange(100.0), np.full(50, 1000.0), n_bins=4)
    assert np.isfinite(t2["psi"]).all()
    assert t2["psi"].sum() > 0.25
    # Stored edges reproduce the same table.
    edges = ev.reference_bins(np.arange(100.0), 4)
    assert ev.psi(np.arange(100.0), np.full(50, 1000.0), edges=edges) == pytest.approx(t2["psi"].sum())


def test_psi_categorical():
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    cur = pd.Series(["a"] * 50 + ["c"] * 50)
    t = ev.psi_table(ref, cur)
    assert set(t["bin"]) == {"a", "b", "c", ev.MISSING_BIN}
    assert ev.psi(ref, ref) == pytest.approx(0.0)
    assert ev.psi(ref, cur) > 0.25


@pytest.mark.parametrize("value,band", [(0.0, "stable"), (0.099, "stable"), (0.1, "watch"), (0.25, "watch"), (0.2501, "act"), (float("nan"), "n/a")])
def test_psi_bands(value, band):
    assert ev.psi_band(value) == band


def test_psi_report_lists_every_column_sorted():
    rng = np.random.default_rng(3)
    a = pd.DataFrame({"x": rng.normal(size=3000), "z": rng.normal(size=3000)})
    b = pd.DataFrame({"x": rng.normal(size=3000) + 2, "z": rng.normal(size=3000)})
    r = ev.psi_report(a, b, ["z", "x"])
    assert list(r["variable"]) == ["x", "z"]
    assert list(r["band"]) == ["act", "stable"]


def test_oot_split_train_dates_before_test_dates():
    rng = np.random.default_rng(0)
    dates = pd.to_datetime("2022-01-01") + pd.to_timedelta(rng.integers(0, 900, 5000), unit="D")
    df = pd.DataFrame({"application_date": dates, "x": rng.normal(size=5000)})
    train, test, cut = ev.oot_split(df)
    assert train["application_date"].max() < test["application_date"].min()
    assert (train["application_date"] < cut).all() and (test["application_date"] >= cut).all()
    assert len(train) + len(test) == len(df)
    assert 0.25 < len(test) / len(df) < 0.35
    # Explicit cut
    train2, test2, cut2 = ev.oot_split(df, cut="2023-06-01")
    assert cut2 == pd.Timestamp("2023-06-01")
    assert train2["application_date"].max() < pd.Timestamp("2023-06-01") <= test2["application_date"].min()


def test_oot_split_cut_outside_range_is_a_clear_error():
    df = pd.DataFrame({"application_date": pd.to_datetime(["2023-01-01", "2023-06-01", "2024-01-01"])})
    with pytest.raises(ValueError, match="leaves no test rows.*choose a cut inside"):
        ev.oot_split(df, cut="2030-01-01")
    with pytest.raises(ValueError, match="leaves no training rows"):
        ev.oot_split(df, cut="2000-01-01")
    with pytest.raises(ValueError, match="at least two dates"):
        ev.oot_split(pd.DataFrame({"application_date": pd.to_datetime(["2023-01-01"] * 3)}))


def test_segment_metrics_counts_auc_and_flags():
    rng = np.random.default_rng(5)
    n = 1400
    seg = np.array(["good"] * 600 + ["noise"] * 600 + ["tiny"] * 200)
    y = rng.integers(0, 2, n)
    p = np.where(seg == "good", 0.3 * y + 0.7 * rng.random(n), rng.random(n))
    t = ev.segment_metrics(pd.DataFrame({"industry": seg}), y, p)
    t = t.set_index("value")
    assert t.loc["good", "count"] == 600 and t.loc["good", "bads"] == y[seg == "good"].sum()
    assert t.loc["good", "auc"] == pytest.approx(skm.roc_auc_score(y[seg == "good"], p[seg == "good"]))
    assert t.loc["good", "flag"] == ""
    assert t.loc["noise", "flag"] == "low_auc"  # >= 500 rows, AUC ~ 0.5
    assert t.loc["tiny", "flag"] == "insufficient"


def test_bad_rate_by_grade_orders_by_pd_and_checks_monotonicity():
    grades = np.array(["R1"] * 100 + ["R2"] * 100 + ["R10"] * 100)
    p = np.r_[np.full(100, 0.01), np.full(100, 0.05), np.full(100, 0.3)]
    y = np.r_[np.zeros(99), 1, np.zeros(95), np.ones(5), np.zeros(70), np.ones(30)]
    t, mono = ev.bad_rate_by_grade(grades, y, p)
    assert list(t["grade"]) == ["R1", "R2", "R10"]  # by mean PD, not by string order
    assert mono
    y_bad = np.r_[np.zeros(90), np.ones(10), np.zeros(99), np.ones(1), np.zeros(70), np.ones(30)]
    _, mono2 = ev.bad_rate_by_grade(grades, y_bad, p)
    assert not mono2
    # R1 expects one default (100 x 1%): with a floor of 5 expected defaults it is listed, not judged
    t3, mono3 = ev.bad_rate_by_grade(grades, y_bad, p, min_expected_bads=5)
    assert mono3 and t3["judged"].tolist() == [False, True, True]


def test_oracle_auc_uses_only_given_rows(tmp_path):
    truth = pd.DataFrame({"application_id": ["a", "b", "c", "d"], "true_pd": [0.1, 0.9, 0.2, 0.8], "latent": 0})
    (tmp_path / "truth").mkdir()
    truth.to_parquet(tmp_path / "truth" / "truth.parquet")
    t = ev.load_truth(tmp_path)
    assert ev.oracle_auc(t, ["a", "b"], [0, 1]) == pytest.approx(1.0)
    # bads a (0.1), d (0.8) vs goods b (0.9), c (0.2): only d > c of four pairs ranks right
    assert ev.oracle_auc(t, ["a", "b", "c", "d"], [1, 0, 0, 1]) == pytest.approx(0.25)
    assert ev.load_truth(tmp_path / "nowhere") is None


def test_evaluate_bundle(yp):
    y, p = yp
    X = pd.DataFrame({"f": p * 3})
    seg = pd.DataFrame({"region": np.where(np.arange(len(y)) % 2, "a", "b")})
    r = ev.evaluate(y, p, y, p, X, X, ["f"], segments_test=seg, grades_test=np.where(p > 0.1, "R5", "R1"))
    assert r.metrics["test_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert r.metrics["psi_score"] == pytest.approx(0.0, abs=1e-12)
    assert set(r.psi["variable"]) == {"score", "f"}
    assert set(r.segments["value"]) == {"a", "b"}
    assert r.grades_monotone is True


def test_psi_from_stored_profile_equals_psi_from_raw_reference():
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"x": np.r_[rng.normal(size=3000), [np.nan] * 300], "s": rng.choice(["a", "b", "c"], 3300)})
    cur = pd.DataFrame({"x": np.r_[rng.normal(size=2000) + 0.5, [np.nan] * 500], "s": rng.choice(["a", "b", "c", "d"], 2500)})
    prof = ev.reference_profile(ref, ["x", "s"])
    # Round trip through CSV, as monitoring reads it back from the run's artifacts.
    import io

    prof = pd.read_csv(io.StringIO(prof.to_csv(index=False)))
    px = ev.psi_against_profile(prof[prof["variable"] == "x"], cur["x"])
    assert px["psi"].sum() == pytest.approx(ev.psi(ref["x"], cur["x"]), rel=1e-9)
    ps = ev.psi_against_profile(prof[prof["variable"] == "s"], cur["s"])
    assert ps.loc[ps["bin"] == ev.MISSING_BIN, "cur_count"].item() == (cur["s"] == "d").sum()  # unseen category
    assert ps["psi"].sum() > ev.psi_against_profile(prof[prof["variable"] == "s"], ref["s"])["psi"].sum()
    assert ev.psi_against_profile(prof[prof["variable"] == "s"], ref["s"])["psi"].sum() == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Paired bootstrap of the AUC difference
# --------------------------------------------------------------------------------------------


def _two_models(n=3000, seed=3):
    """Outcomes from a latent score; model a sees the score, model b mostly noise (PDs rounded: ties)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(z * 1.5 - 3.5)))).astype(int)
    p_a = np.round(1 / (1 + np.exp(-(z - 3.5))), 3)
    p_b = np.round(1 / (1 + np.exp(-(0.3 * z + rng.normal(size=n) - 3.5))), 2)
    return y, p_a, p_b


def test_paired_bootstrap_identical_model_gives_zero():
    y, p_a, _ = _two_models()
    r = ev.paired_bootstrap(y, p_a, p_a.copy(), n_boot=200, seed=1)
    assert r["diff"] == 0.0 and r["ci95"] == [0.0, 0.0] and r["share_positive"] == 0.0
    assert r["n_boot"] == 200 and r["auc_a"] == pytest.approx(ev.auc(y, p_a), abs=1e-15)


def test_paired_bootstrap_clearly_better_model_has_interval_above_zero():
    y, p_a, p_b = _two_models()
    r = ev.paired_bootstrap(y, p_a, p_b, n_boot=500, seed=0)
    assert r["diff"] == pytest.approx(ev.auc(y, p_a) - ev.auc(y, p_b), abs=1e-15)
    assert 0 < r["ci95"][0] < r["diff"] < r["ci95"][1]
    assert r["share_positive"] == 1.0
    worse = ev.paired_bootstrap(y, p_b, p_a, n_boot=500, seed=0)  # swapped: the interval lies below 0
    assert worse["ci95"][1] < 0
    assert worse["ci95"] == pytest.approx([-r["ci95"][1], -r["ci95"][0]], abs=1e-12)


def test_paired_bootstrap_equals_resampling_rows_and_a_seed_reproduces():
    """The counts-based AUC of each resample equals evaluation.auc on the resampled rows (same draws)."""
    y, p_a, p_b = _two_models(n=800, seed=5)
    r = ev.paired_bootstrap(y, p_a, p_b, n_boot=300, seed=42)
    rng = np.random.default_rng(42)
    diffs = []
    for _ in range(300):
        i = rng.integers(0, y.size, size=y.size)
        if 0 < y[i].sum() < y.size:
            diffs.append(ev.auc(y[i], p_a[i]) - ev.auc(y[i], p_b[i]))
    assert r["n_boot"] == len(diffs)
    assert r["ci95"] == pytest.approx(list(np.quantile(diffs, [0.025, 0.975])), abs=1e-12)
    assert r["share_positive"] == pytest.approx(np.mean(np.array(diffs) > 0))
    assert ev.paired_bootstrap(y, p_a, p_b, n_boot=300, seed=42) == r
    assert ev.paired_bootstrap(y, p_a, p_b, n_boot=300, seed=43)["ci95"] != r["ci95"]


def test_paired_bootstrap_one_class_and_bad_input():
    r = ev.paired_bootstrap([0, 0, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    assert r["n_boot"] == 0 and np.isnan(r["diff"]) and all(np.isnan(r["ci95"]))
    with pytest.raises(ValueError, match="same length"):
        ev.paired_bootstrap([0, 1], [0.1, 0.2], [0.1])


def test_bootstrap_aucs_resample_the_same_rows_for_every_model():
    from riskmodel.evaluation import auc, bootstrap_aucs, paired_bootstrap

    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.2).astype(int)
    a, b = y + rng.normal(0, 1.0, 400), y + rng.normal(0, 1.5, 400)
    draws = bootstrap_aucs(y, {"a": a, "b": b}, n_boot=300, seed=7)
    pb = paired_bootstrap(y, a, b, n_boot=300, seed=7)
    d = draws["a"] - draws["b"]
    assert len(d) == pb["n_boot"] == 300
    np.testing.assert_allclose([np.quantile(d, 0.025), np.quantile(d, 0.975)], pb["ci95"], atol=1e-12)
    assert abs(np.mean(draws["a"]) - auc(y, a)) < 0.01
    assert bootstrap_aucs(np.zeros(5), {"a": np.arange(5.0)})["a"].size == 0
