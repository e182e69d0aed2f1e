"""Validation battery: each statistic against an independent computation (scipy's distributions, a
naive O(n^2) DeLong, hand-worked examples) and the edge cases a validator meets (empty grades, one
obligor, no defaults, one class, PD of 0 or 1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from riskmodel import evaluation as ev
from riskmodel import validation as va
from riskmodel.errors import UserError
from riskmodel.grades import MasterScale


@pytest.fixture
def sample():
    """Calibrated PDs (y drawn from them), master-scale grades, a weaker baseline and earlier grades."""
    rng = np.random.default_rng(11)
    n = 4000
    p = rng.beta(1.2, 25, n)
    y = (rng.random(n) < p).astype(int)
    ms = MasterScale()
    baseline = np.clip(p * np.exp(rng.normal(0, 0.8, n)), 0, 1)
    previous = ms.grade(np.clip(p * np.exp(rng.normal(0, 0.4, n)), 0, 1))
    return y, p, ms.grade(p), list(ms.labels), baseline, previous


def naive_delong(y, scores):
    """DeLong et al. (1988) straight from the definition: psi over all default/non-default pairs."""
    y = np.asarray(y)
    v10, v01, aucs = [], [], []
    for s in np.atleast_2d(scores):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    m, n = int((y == 1).sum()), int((y == 0).sum())
    cov = np.atleast_2d(np.cov(np.vstack(v10))) / m + np.atleast_2d(np.cov(np.vstack(v01))) / n
    return np.array(aucs), cov


# --------------------------------------------------------------------------------------------
# Discrimination
# --------------------------------------------------------------------------------------------


def test_fast_delong_matches_naive_pairs_with_ties():
    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.3).astype(int)
    a = np.round(rng.random(n) * 0.5 + 0.3 * y, 2)  # rounded: many ties, within and across classes
    b = np.round(rng.random(n) * 0.5 + 0.1 * y + 0.2 * a, 1)
    auc_fast, cov_fast = va.delong(y, np.vstack([a, b]))
    auc_naive, cov_naive = naive_delong(y, np.vstack([a, b]))
    np.testing.assert_allclose(auc_fast, auc_naive, atol=1e-12)
    np.testing.assert_allclose(cov_fast, cov_naive, rtol=1e-10, atol=1e-15)
    assert cov_fast[0, 1] != 0  # correlated scores: the covariance term is real


def test_auc_matches_mann_whitney_and_evaluation(sample):
    y, p, *_ = sample
    r = va.auc_delong(y, p)
    u = stats.mannwhitneyu(p[y == 1], p[y == 0]).statistic
    assert r["auc"] == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), abs=1e-12)
    assert r["auc"] == pytest.approx(ev.auc(y, p), abs=1e-12)
    assert r["gini"] == pytest.approx(2 * r["auc"] - 1, abs=1e-12)


def test_auc_confidence_interval_from_naive_variance():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(40), np.zeros(160)].astype(int)
    p = np.clip(rng.normal(0.1 + 0.08 * y, 0.06), 0, 1)
    r = va.auc_delong(y, p, confidence=0.90)
    auc, cov = naive_delong(y, p)
    se = math.sqrt(cov[0, 0])
    z = stats.norm.ppf(0.95)
    assert r["auc_se"] == pytest.approx(se, rel=1e-10)
    assert r["auc_ci_low"] == pytest.approx(auc[0] - z * se, rel=1e-10)
    assert r["auc_ci_high"] == pytest.approx(auc[0] + z * se, rel=1e-10)
    assert r["gini_ci_low"] == pytest.approx(2 * (auc[0] - z * se) - 1, rel=1e-10)
    assert r["gini_ci_high"] == pytest.approx(2 * (auc[0] + z * se) - 1, rel=1e-10)
    assert (r["n"], r["n_defaults"], r["confidence"]) == (200, 40, 0.90)


def test_auc_ci_is_clipped_to_unit_interval_for_perfect_separation():
    r = va.auc_delong([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9])
    assert r["auc"] == 1.0 and r["auc_se"] == 0.0
    assert (r["auc_ci_low"], r["auc_ci_high"]) == (1.0, 1.0)


def test_single_class_gives_none_not_a_crash():
    r = va.auc_delong([0, 0, 0], [0.1, 0.2, 0.3])
    assert r["auc"] is None and r["auc_se"] is None and r["gini"] is None and r["auc_ci_low"] is None
    # one default only: AUC defined, its DeLong variance is not (a sample variance needs two values)
    r1 = va.auc_delong([0, 0, 1], [0.1, 0.2, 0.3])
    assert r1["auc"] == 1.0 and r1["auc_se"] is None
    t = va.auc_decline_test(0.8, r["auc"], r["auc_se"])
    assert t["statistic"] is None and t["p_value"] is None


def test_cap_accuracy_ratio_equals_gini_with_and_without_ties(sample):
    y, p, *_ = sample
    for scores in (p, np.round(p, 2)):
        cap = va.cap_curve(y, scores)
        assert cap["population_share"].iloc[0] == 0 and cap["default_share"].iloc[0] == 0
        assert cap["population_share"].iloc[-1] == pytest.approx(1) and cap["default_share"].iloc[-1] == pytest.approx(1)
        assert va.accuracy_ratio_from_cap(cap, y.mean()) == pytest.approx(2 * ev.auc(y, scores) - 1, abs=1e-12)
    grid = va.cap_curve(y, p, points=101)
    assert len(grid) == 101
    assert va.accuracy_ratio_from_cap(grid, y.mean()) == pytest.approx(2 * ev.auc(y, p) - 1, abs=5e-3)


def test_cap_hand_example():
    # PDs 0.9 (default), 0.7 (good), 0.5 (default), 0.1 (good): the riskiest quarter holds half the defaults.
    cap = va.cap_curve([1, 0, 1, 0], [0.9, 0.7, 0.5, 0.1])
    np.testing.assert_allclose(cap["population_share"], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(cap["default_share"], [0, 0.5, 0.5, 1.0, 1.0])
    # area under the CAP = 0.0625 + 0.125 + 0.1875 + 0.25 = 0.625; a_R = 0.125; a_P = (1 - 0.5) / 2
    # -> AR = 0.5; AUC = 3 of 4 default/good pairs ranked right = 0.75 and 2 * 0.75 - 1 = 0.5
    assert va.accuracy_ratio_from_cap(cap, 0.5) == pytest.approx(0.5)
    assert va.accuracy_ratio_from_cap(cap, 0.0) is None
    grid = va.cap_curve([1, 0, 1, 0], [0.9, 0.7, 0.5, 0.1], points=5)
    np.testing.assert_allclose(grid["pd_threshold"], [np.inf, 0.9, 0.7, 0.5, 0.1])


def test_discrimination_bundle_reuses_ks(sample):
    y, p, *_ = sample
    d, cap = va.discrimination(y, p, cap_points=None)
    assert d["ks"] == pytest.approx(ev.ks(y, p))
    assert d["accuracy_ratio_cap"] == pytest.approx(d["gini"], abs=1e-12)
    assert len(cap) == np.unique(p).size + 1


def test_auc_decline_test_hand_values():
    t = va.auc_decline_test(0.80, 0.76, 0.02)  # S = 2
    assert t["statistic"] == pytest.approx(2.0)
    assert t["p_value"] == pytest.approx(1 - stats.norm.cdf(2.0))  # 0.0228: yellow
    assert va.Lights().light(t["p_value"]) == "yellow"
    up = va.auc_decline_test(0.70, 0.75, 0.02)  # current above initial: no decline
    assert up["p_value"] == pytest.approx(stats.norm.cdf(2.5))
    with pytest.raises(ValueError, match=r"auc_initial must lie in \[0, 1\]"):
        va.auc_decline_test(1.2, 0.7, 0.01)


def test_paired_delong_against_naive_covariance():
    rng = np.random.default_rng(8)
    n = 400
    y = (rng.random(n) < 0.2).astype(int)
    a = np.clip(0.1 + 0.15 * y + rng.normal(0, 0.1, n), 0, 1)
    b = np.clip(0.5 * a + 0.05 * y + rng.normal(0, 0.1, n), 0, 1)
    t = va.delong_paired_test(y, a, b)
    auc, cov = naive_delong(y, np.vstack([a, b]))
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = (auc[0] - auc[1]) / se
    assert t["difference"] == pytest.approx(auc[0] - auc[1], abs=1e-12)
    assert t["se_difference"] == pytest.approx(se, rel=1e-10)
    assert t["statistic"] == pytest.approx(z, rel=1e-10)
    assert t["p_two_sided"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)
    assert t["p_a_worse"] == pytest.approx(stats.norm.cdf(z), rel=1e-10)
    assert t["correlation"] == pytest.approx(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1]), rel=1e-10)
    swapped = va.delong_paired_test(y, b, a)
    assert swapped["statistic"] == pytest.approx(-z, rel=1e-10)
    same = va.delong_paired_test(y, a, a)  # identical scores: no difference to test
    assert same["difference"] == 0 and same["statistic"] is None and same["p_two_sided"] is None


# --------------------------------------------------------------------------------------------
# Calibration tests
# --------------------------------------------------------------------------------------------


def test_jeffreys_against_scipy_beta_and_edges():
    assert va.jeffreys_test(100, 5, 0.02) == pytest.approx(stats.beta.cdf(0.02, 5.5, 95.5))
    # Hand value: N = 1, D = 0, PD = 0.5 -> Beta(1/2, 3/2) CDF at 1/2 = 1/2 + 1/pi.
    assert va.jeffreys_test(1, 0, 0.5) == pytest.approx(0.5 + 1 / math.pi, abs=1e-12)
    n, d, p = np.array([0, 1, 50, 50, 50]), np.array([0, 1, 0, 50, 3]), np.array([0.1, 0.1, 0.0, 1.0, 0.02])
    out = va.jeffreys_test(n, d, p)
    assert np.isnan(out[0])  # empty grade
    assert out[1] == pytest.approx(stats.beta.cdf(0.1, 1.5, 0.5))  # one obligor, defaulted
    assert out[2] == 0.0  # PD 0: the posterior has no mass at 0, however few defaults
    assert out[3] == 1.0  # PD 1
    assert out[4] == pytest.approx(stats.beta.cdf(0.02, 3.5, 47.5))
    assert isinstance(va.jeffreys_test(10, 1, 0.1), float)


def test_binomial_against_scipy_and_hand_value():
    # P(X >= 2), X ~ Bin(10, 0.1) = 1 - 0.9^10 - 10 * 0.1 * 0.9^9
    assert va.binomial_test(10, 2, 0.1) == pytest.approx(1 - 0.9**10 - 10 * 0.1 * 0.9**9, abs=1e-12)
    assert va.binomial_test(500, 14, 0.02) == pytest.approx(1 - stats.binom.cdf(13, 500, 0.02))
    out = va.binomial_test([0, 20, 20, 20], [0, 0, 1, 20], [0.05, 0.05, 0.0, 1.0])
    assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == 0.0 and out[3] == 1.0


def test_correlated_binomial_reduces_to_binomial_and_closed_forms():
    assert va.binomial_test_correlated(300, 9, 0.02, rho=0.0) == pytest.approx(va.binomial_test(300, 9, 0.02))
    # N = 1: P(default) = E[p(Z)] = PD whatever rho
    assert va.binomial_test_correlated(1, 1, 0.03, rho=0.2) == pytest.approx(0.03, abs=1e-10)
    # N = 2, D = 2: both default = P(A1 < c, A2 < c), asset correlation rho -> bivariate normal
    pd_, rho = 0.05, 0.12
    c = stats.norm.ppf(pd_)
    both = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([c, c])
    assert va.binomial_test_correlated(2, 2, pd_, rho) == pytest.approx(both, rel=1e-5)
    assert va.binomial_test_correlated(2, 1, pd_, rho) == pytest.approx(2 * pd_ - both, rel=1e-6)
    out = va.binomial_test_correlated([0, 10, 10, 10], [0, 0, 2, 3], [0.1, 0.1, 0.0, 1.0])
    assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == 0.0 and out[3] == 1.0


def test_correlated_binomial_against_monte_carlo():
    rng = np.random.default_rng(2)
    n_obl, d_obs, pd_, rho = 400, 16, 0.02, 0.04
    z = rng.standard_normal(400_000)
    cond = stats.norm.cdf((stats.norm.ppf(pd_) + math.sqrt(rho) * z) / math.sqrt(1 - rho))
    sim = (rng.binomial(n_obl, cond) >= d_obs).mean()  # se about 0.0005
    assert va.binomial_test_correlated(n_obl, d_obs, pd_, rho) == pytest.approx(sim, abs=0.003)
    # correlation fattens the upper tail: far above the expected 8 defaults, p is larger than without it
    assert va.binomial_test_correlated(n_obl, d_obs, pd_, rho) > va.binomial_test(n_obl, d_obs, pd_)


def test_critical_default_rate_and_large_portfolio_limit():
    pd_, rho = 0.02, 0.04
    crit = va.vasicek_critical_default_rate(pd_, rho, q=0.95)
    assert crit == pytest.approx(stats.norm.cdf((stats.norm.ppf(pd_) + 0.2 * stats.norm.ppf(0.95)) / math.sqrt(0.96)))
    # the Vasicek default-rate distribution puts mass 1 - q above the q-quantile
    assert va.vasicek_implied_p_value(crit, pd_, rho) == pytest.approx(0.05, abs=1e-12)
    assert va.vasicek_critical_default_rate(pd_, 1e-12, q=0.999) == pytest.approx(pd_, abs=1e-6)
    # exact finite-N p-value approaches the asymptotic one as N grows
    n_big = 2_000_000
    d_big = int(round(crit * n_big))
    assert va.binomial_test_correlated(n_big, d_big, pd_, rho) == pytest.approx(0.05, abs=0.002)


def test_hosmer_lemeshow_against_hand_computation():
    y = np.array([0, 0, 1, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.1, 0.1, 0.1, 0.6, 0.6, 0.6, 0.6])
    groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    res, tab = va.hosmer_lemeshow(y, p, groups=groups)
    # group a: O = 1, E = 0.4, V = 0.36; group b: O = 3, E = 2.4, V = 0.96
    hand = (1 - 0.4) ** 2 / 0.36 + (3 - 2.4) ** 2 / 0.96
    assert res["statistic"] == pytest.approx(hand)
    assert res["df"] == 2 and res["p_value"] == pytest.approx(stats.chi2.sf(hand, 2))
    res_in, _ = va.hosmer_lemeshow(y, p, groups=groups, in_sample=True)
    assert res_in["df"] == 0 and res_in["p_value"] is None  # G - 2 = 0 degrees of freedom
    assert tab["expected"].tolist() == pytest.approx([0.4, 2.4])
    # quantile groups (default) equal the evaluation module's calibration table's bins
    rng = np.random.default_rng(4)
    pp = rng.beta(1, 15, 3000)
    yy = (rng.random(3000) < pp).astype(int)
    res10, tab10 = va.hosmer_lemeshow(yy, pp, n_groups=10, in_sample=True)
    cal = ev.calibration_table(yy, pp, 10)
    manual = np.sum((cal["bads"] - cal["count"] * cal["mean_pd"]) ** 2 / (cal["count"] * cal["mean_pd"] * (1 - cal["mean_pd"])))
    assert res10["statistic"] == pytest.approx(manual)
    assert res10["df"] == 8 and res10["p_value"] == pytest.approx(stats.chi2.sf(manual, 8))


def test_hosmer_lemeshow_degenerate_groups():
    # a group with PD 0 and no defaults adds nothing; PD 0 with a default makes HL infinite
    res, _ = va.hosmer_lemeshow([0, 0, 1, 0], [0.0, 0.0, 0.5, 0.5], groups=["a", "a", "b", "b"])
    assert res["statistic"] == pytest.approx(0.0)
    bad, _ = va.hosmer_lemeshow([1, 0, 1, 0], [0.0, 0.0, 0.5, 0.5], groups=["a", "a", "b", "b"])
    assert bad["statistic"] is None and bad["p_value"] == 0.0


def test_spiegelhalter_hand_value():
    y = np.array([1, 0, 0, 1])
    p = np.array([0.2, 0.4, 0.1, 0.7])
    num = (1 - 0.2) * 0.6 + (0 - 0.4) * 0.2 + (0 - 0.1) * 0.8 + (1 - 0.7) * (-0.4)
    den = 0.36 * 0.16 + 0.04 * 0.24 + 0.64 * 0.09 + 0.16 * 0.21
    r = va.spiegelhalter(y, p)
    assert r["statistic"] == pytest.approx(num / math.sqrt(den))
    assert r["p_value"] == pytest.approx(2 * stats.norm.sf(abs(num / math.sqrt(den))))
    assert va.spiegelhalter([0, 1], [0.5, 0.5]) == {"statistic": None, "p_value": None}


def test_pluto_tasche_solves_its_equation():
    n = np.array([100, 400, 300, 0, 50])
    d = np.array([0, 0, 2, 0, 5])
    gamma = 0.9
    ub = va.pluto_tasche(n, d, gamma)
    n_plus, d_plus = np.cumsum(n[::-1])[::-1], np.cumsum(d[::-1])[::-1]
    np.testing.assert_allclose(stats.binom.cdf(d_plus, n_plus, ub), 1 - gamma, rtol=1e-9)
    assert np.all(np.diff(ub) >= 0)  # pooled with worse grades: never above a worse grade's bound
    # no defaults anywhere: closed form 1 - (1 - gamma)^(1 / n)
    z = va.pluto_tasche([100, 400, 300], [0, 0, 0], gamma)
    np.testing.assert_allclose(z, 1 - (1 - gamma) ** (1 / np.array([800, 700, 300])), rtol=1e-12)
    # every obligor defaulted from a grade on: bound 1; nothing rated from a grade on: NaN
    edge = va.pluto_tasche([10, 3, 0], [0, 3, 0], 0.95)
    assert edge[1] == 1.0 and np.isnan(edge[2])


# --------------------------------------------------------------------------------------------
# Grades
# --------------------------------------------------------------------------------------------


def test_grade_calibration_edge_cases():
    order = ["A", "B", "C", "D", "E"]
    grades = ["A"] * 50 + ["B"] + ["C"] * 40 + ["E"] * 9  # D is empty, B has one obligor
    y = np.r_[np.zeros(50), [0], np.zeros(40), np.ones(9)]  # all defaults in the worst grade
    p = np.r_[np.full(50, 0.01), [0.03], np.full(40, 0.05), np.full(9, 0.3)]
    t = va.grade_calibration(y, p, grades, order, gamma=0.9)
    assert t["grade"].tolist() == order
    assert t["n"].tolist() == [50, 1, 40, 0, 9] and t["defaults"].tolist() == [0, 0, 0, 0, 9]
    d_row = t.iloc[3]
    assert np.isnan(d_row["jeffreys_p"]) and d_row["light"] == "n/a" and np.isnan(d_row["pd_tested"])
    a_row = t.iloc[0]
    assert a_row["jeffreys_p"] == pytest.approx(stats.beta.cdf(0.01, 0.5, 50.5))
    assert a_row["binomial_p"] == 1.0 and a_row["binomial_rho_p"] == 1.0
    b_row = t.iloc[1]
    assert b_row["jeffreys_p"] == pytest.approx(stats.beta.cdf(0.03, 0.5, 1.5))
    e_row = t.iloc[4]
    assert e_row["binomial_p"] == pytest.approx(0.3**9)
    assert e_row["light"] == "red" and e_row["jeffreys_light"] == "red"
    assert e_row["pt_upper_pd"] == 1.0  # every obligor from E on defaulted
    assert t["pt_upper_pd"].iloc[0] == pytest.approx(stats.beta.ppf(0.9, 10, 91))
    assert t["expected_defaults"].tolist() == pytest.approx([0.5, 0.03, 2.0, 0.0, 2.7])


def test_grade_calibration_with_master_scale_pd():
    order = ["R1", "R2"]
    y = np.array([0, 0, 1, 0, 1, 0])
    p = np.array([0.01, 0.02, 0.03, 0.2, 0.3, 0.4])
    g = np.array(["R1", "R1", "R1", "R2", "R2", "R2"])
    t = va.grade_calibration(y, p, g, order, grade_pd={"R1": 0.05, "R2": 0.25})
    assert t["pd_tested"].tolist() == [0.05, 0.25]
    assert t["mean_pd"].tolist() == pytest.approx([0.02, 0.3])
    assert t["jeffreys_p"].tolist() == pytest.approx([stats.beta.cdf(0.05, 1.5, 2.5), stats.beta.cdf(0.25, 1.5, 2.5)])
    with pytest.raises(ValueError, match=r"grade_pd lacks a PD for grade\(s\) \['R2'\]"):
        va.grade_calibration(y, p, g, order, grade_pd={"R1": 0.05})


# --------------------------------------------------------------------------------------------
# Stability
# --------------------------------------------------------------------------------------------


def test_migration_matrix_and_bandwidth_hand_example():
    m = np.array([[5, 2, 1], [1, 6, 2], [0, 3, 4]])
    frm = np.repeat(np.repeat(["1", "2", "3"], 3), m.ravel())
    to = np.repeat(np.tile(["1", "2", "3"], 3), m.ravel())
    frm = np.r_[frm, [None, "2"]]  # one obligor unrated at the start, one unrated now
    to = np.r_[to, ["1", None]]
    counts, shares, n_unrated = va.migration_matrix(frm, to, ["1", "2", "3"])
    np.testing.assert_array_equal(counts.to_numpy(), m)
    np.testing.assert_allclose(shares.to_numpy(), m / m.sum(axis=1, keepdims=True))
    assert n_unrated == 2
    up, low = va.matrix_weighted_bandwidth(m)
    # upper: (1*2 + 2*1 + 1*2) / (max(2,0)*(2+1) + max(1,1)*2) = 6 / 8
    # lower: (1*1 + 2*0 + 1*3) / (max(1,1)*1 + max(0,2)*(0+3)) = 4 / 7
    assert up == pytest.approx(0.75) and low == pytest.approx(4 / 7)
    assert va.matrix_weighted_bandwidth(np.eye(4) * 10) == (0.0, 0.0)
    # all of grade 1 to the worst grade: the farthest move possible -> 1
    assert va.matrix_weighted_bandwidth([[0, 0, 5], [0, 3, 0], [0, 0, 2]]) == (1.0, 0.0)
    # the weight is the farthest move from grade i in either direction, max(|i - K|, |i - 1|):
    # one notch down from grade 3 of 4 is half of max(1, 2), and one notch up from grade 2 of 4 half of max(1, 2)
    four = np.diag([4, 4, 0, 4])
    four[2, 3] = 5
    assert va.matrix_weighted_bandwidth(four) == (0.5, 0.0)
    four_up = np.diag([4, 0, 4, 4])
    four_up[1, 0] = 3
    assert va.matrix_weighted_bandwidth(four_up) == (0.0, 0.5)
    with pytest.raises(ValueError, match="must be square"):
        va.matrix_weighted_bandwidth(np.ones((2, 3)))


def test_migration_keeps_empty_grades():
    counts, shares, _ = va.migration_matrix(["A", "A"], ["A", "C"], ["A", "B", "C"])
    assert counts.loc["A"].tolist() == [1, 0, 1]
    assert shares.loc["B"].isna().all()  # nobody in B at the start


def test_concentration_hand_values_and_ecb_test():
    order = ["1", "2", "3"]
    g = ["1"] * 50 + ["2"] * 30 + ["3"] * 20
    c = va.concentration(g, order)
    cv = math.sqrt(3 * ((0.5 - 1 / 3) ** 2 + (0.3 - 1 / 3) ** 2 + (0.2 - 1 / 3) ** 2))
    assert c["hhi"] == pytest.approx(0.38)
    assert c["cv"] == pytest.approx(cv) and cv == pytest.approx(math.sqrt(0.14))
    assert c["hi"] == pytest.approx(1 + math.log(0.38) / math.log(3))
    even = va.concentration(["1", "2", "3"], order)
    assert even["cv"] == pytest.approx(0) and even["hi"] == pytest.approx(0, abs=1e-12)
    one = va.concentration(["2"] * 7, order)
    assert one["hhi"] == pytest.approx(1) and one["hi"] == pytest.approx(1)
    # empty grades of the scale count in K
    assert va.concentration(["1", "2"], ["1", "2", "3", "4"])["hhi"] == pytest.approx(0.5)
    ref = ["1"] * 40 + ["2"] * 35 + ["3"] * 25
    t = va.concentration(g, order, reference_grades=ref)
    cv0 = math.sqrt(3 * ((0.4 - 1 / 3) ** 2 + (0.35 - 1 / 3) ** 2 + (0.25 - 1 / 3) ** 2))
    stat = math.sqrt(2) * (cv - cv0) / math.sqrt(cv**2 * (0.5 + cv**2))
    assert t["statistic"] == pytest.approx(stat) and t["p_value"] == pytest.approx(1 - stats.norm.cdf(stat))
    assert va.concentration(["1", "2", "3"], order, reference_grades=g)["p_value"] == 1.0
    # the reference as shares (a model's stored training grade shares) or counts: the same test
    assert va.concentration(g, order, reference_grades={"1": 0.4, "2": 0.35, "3": 0.25})["p_value"] == pytest.approx(t["p_value"])
    assert va.concentration(g, order, reference_grades={"1": 40, "3": 25, "2": 35})["cv_reference"] == pytest.approx(cv0)
    with pytest.raises(ValueError, match=r"reference_grades holds grade\(s\) not in grade_order: \['9'\]"):
        va.concentration(g, order, reference_grades={"1": 0.5, "9": 0.5})
    with pytest.raises(ValueError, match="shares must be finite and non-negative"):
        va.concentration(g, order, reference_grades={"1": -0.5, "2": 1.5})


def test_psi_stability_reuses_evaluation(sample):
    y, p, *_ = sample
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=2000), "k": rng.choice(["a", "b"], 2000)})
    cur = pd.DataFrame({"x": rng.normal(0.8, 1, 2000), "k": rng.choice(["a", "b"], 2000, p=[0.5, 0.5])})
    t = va.psi_stability(p[:2000], p[2000:], ref, cur)
    assert t["variable"].iloc[0] == "score"
    assert t["psi"].iloc[0] == pytest.approx(ev.psi(p[:2000], p[2000:]))
    rep = ev.psi_report(ref, cur, ["x", "k"])
    assert t.set_index("variable").loc["x", "psi"] == pytest.approx(rep.set_index("variable").loc["x", "psi"])
    assert t.set_index("variable").loc["x", "light"] == {"stable": "green", "watch": "yellow", "act": "red"}[ev.psi_band(t.set_index("variable").loc["x", "psi"])]
    with pytest.raises(ValueError, match=r"missing from the reference or current features: \['z'\]"):
        va.psi_stability(reference_features=ref, features=cur, columns=["x", "z"])


# --------------------------------------------------------------------------------------------
# Lights, battery, JSON
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p, light", [(0.05, "green"), (0.0499, "yellow"), (0.001, "yellow"), (0.00099, "red"), (None, "n/a"), (float("nan"), "n/a")])
def test_default_lights(p, light):
    assert va.Lights().light(p) == light


def test_custom_lights_and_worst():
    strict = va.Lights(yellow_below=0.10, red_below=0.01)
    assert strict.light(0.07) == "yellow" and strict.light(0.005) == "red"
    assert va.worst_light(["green", "n/a", "yellow"]) == "yellow"
    assert va.worst_light(["n/a"]) == "n/a"
    with pytest.raises(ValueError, match="need 0 < red_below < yellow_below < 1"):
        va.Lights(yellow_below=0.01, red_below=0.05)


def test_battery_runs_everything_and_serialises_strictly(sample):
    y, p, g, order, baseline, previous = sample
    rng = np.random.default_rng(0)
    feats = pd.DataFrame({"f": rng.normal(size=y.size)})
    r = va.validation_battery(
        y, p, g, order, auc_initial=0.75, pd_baseline=baseline, grades_previous=previous, reference_grades=previous,
        reference_score=p[::-1], reference_features=feats, features=feats * 1.01,
    )
    counted = r.summary.loc[r.summary["in_verdict"], "light"]
    assert r.verdict == va.worst_light(counted)
    assert set(r.summary["test"]) == {
        "auc_vs_initial", "auc_vs_baseline", "jeffreys", "binomial", "binomial_correlated",
        "hosmer_lemeshow", "spiegelhalter", "concentration_cv", "psi",
    }
    assert not r.summary.loc[r.summary["test"] == "binomial", "in_verdict"].any()
    psi_rows = r.summary[r.summary["test"] == "psi"].set_index("level")
    assert psi_rows.loc["score", "in_verdict"] and not psi_rows.loc["f", "in_verdict"]
    jeff = r.summary[(r.summary["test"] == "jeffreys") & (r.summary["level"] != "portfolio")]
    assert jeff["light"].tolist() == r.grades["jeffreys_light"].tolist()
    assert r.discrimination["auc_vs_baseline"]["difference"] > 0  # the noisy baseline is weaker
    assert r.migration["mwb_upper"] > 0 and r.migration["n_pairs"] == y.size
    assert r.portfolio["pd_tested"] == pytest.approx(p.mean())
    assert r.parameters["rho"] == va.DEFAULT_RHO and r.parameters["pd_source"] == "mean_model_pd"
    text = json.dumps(r.to_dict(), allow_nan=False)  # strict JSON: NaN / inf become null
    back = json.loads(text)
    assert back["verdict"] == r.verdict
    assert back["migration"]["grades"] == order and len(back["migration"]["counts"]) == len(order)
    assert back["cap"][0]["pd_threshold"] is None  # +inf at the CAP's origin


def test_battery_takes_a_psi_table_and_an_uncounted_auc_reference(sample):
    y, p, g, order, *_ = sample
    table = pd.DataFrame({"variable": ["score", "f1", "f2"], "psi": [0.3, 0.02, 0.15], "band": ["act", "stable", "watch"]})
    r = va.validation_battery(y, p, g, order, psi=table, auc_initial=0.99, auc_initial_in_verdict=False)
    assert r.psi["light"].tolist() == ["red", "green", "yellow"]
    assert r.verdict == "red"  # the score's PSI counts
    rows = r.summary.set_index(["test", "level"])
    assert rows.loc[("psi", "score"), "in_verdict"] and not rows.loc[("psi", "f2"), "in_verdict"]
    # an AUC far below the reference is red, but shown only
    assert rows.loc[("auc_vs_initial", "portfolio"), "light"] == "red"
    assert not rows.loc[("auc_vs_initial", "portfolio"), "in_verdict"]
    assert r.discrimination["auc_vs_initial"]["in_verdict"] is False and r.parameters["auc_initial_in_verdict"] is False
    without = va.validation_battery(y, p, g, order, psi=table.assign(band=["stable"] * 3))
    assert "auc_vs_initial" not in set(without.summary["test"]) and without.verdict != "red"
    with pytest.raises(ValueError, match=r"the psi table lacks column\(s\) \['band'\]"):
        va.validation_battery(y, p, g, order, psi=table.drop(columns="band"))


def test_battery_flags_underestimated_pd(sample):
    y, p, g, order, *_ = sample
    r = va.validation_battery(y, p / 3, MasterScale().grade(p / 3), order)
    assert r.verdict == "red"
    assert r.portfolio["jeffreys_light"] == "red"


def test_battery_single_class_and_extreme_pds():
    order = ["A", "B", "C"]
    y = np.zeros(6, dtype=int)
    p = np.array([0.0, 0.0, 0.2, 0.2, 1.0, 1.0])
    r = va.validation_battery(y, p, ["A", "A", "B", "B", "C", "C"], order, auc_initial=0.8)
    assert r.discrimination["auc"] is None and r.discrimination["accuracy_ratio_cap"] is None
    assert r.discrimination["auc_vs_initial"]["light"] == "n/a"
    a, c = r.grades.iloc[0], r.grades.iloc[2]
    assert a["jeffreys_p"] == 0.0 and a["binomial_p"] == 1.0  # PD 0: Jeffreys red, no default so binomial green
    assert c["jeffreys_p"] == 1.0 and c["binomial_rho_p"] == 1.0  # PD 1 can never be underestimated
    json.dumps(r.to_dict(), allow_nan=False)


def test_battery_master_scale_portfolio_pd():
    order = ["A", "B"]
    y = np.array([0, 1, 0, 0, 1, 0])
    p = np.array([0.1, 0.1, 0.1, 0.3, 0.3, 0.3])
    g = ["A", "A", "A", "B", "B", "B"]
    r = va.validation_battery(y, p, g, order, grade_pd={"A": 0.05, "B": 0.2})
    assert r.parameters["pd_source"] == "master_scale"
    assert r.portfolio["pd_tested"] == pytest.approx(0.125)  # obligor-weighted mean of the grade PDs
    assert r.portfolio["jeffreys_p"] == pytest.approx(stats.beta.cdf(0.125, 2.5, 4.5))


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_inputs_give_clear_errors():
    order = ["A", "B"]
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        va.validation_battery([0, 1], [0.1, 0.2, 0.3], ["A", "B"], order)
    with pytest.raises(ValueError, match=r"only 0 \(good\) and 1 \(bad\)"):
        va.auc_delong([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]; 1 value\(s\) outside, first at row 1: 1.5"):
        va.validation_battery([0, 1], [0.1, 1.5], ["A", "B"], order)
    with pytest.raises(ValueError, match="NaN prediction"):
        va.spiegelhalter([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match=r"grades holds label\(s\) not in grade_order: \['Z'\]"):
        va.validation_battery([0, 1], [0.1, 0.2], ["A", "Z"], order)
    with pytest.raises(ValueError, match=r"grades has 1 missing value\(s\), first at row 1"):
        va.validation_battery([0, 1], [0.1, 0.2], ["A", None], order)
    with pytest.raises(ValueError, match="grades and y must have the same length"):
        va.validation_battery([0, 1], [0.1, 0.2], ["A"], order)
    with pytest.raises(ValueError, match="grade_order has repeated labels"):
        va.validation_battery([0, 1], [0.1, 0.2], ["A", "B"], ["A", "B", "A"])
    with pytest.raises(ValueError, match=r"rho must lie in \[0, 1\)"):
        va.binomial_test_correlated(10, 1, 0.1, rho=1.0)
    with pytest.raises(ValueError, match=r"gamma must lie in \(0, 1\)"):
        va.pluto_tasche([10], [0], gamma=1.0)
    with pytest.raises(ValueError, match="0 <= defaults <= obligors"):
        va.jeffreys_test(5, 6, 0.1)
    with pytest.raises(ValueError, match=r"PD must lie in \[0, 1\]"):
        va.binomial_test(5, 1, -0.1)
    with pytest.raises(ValueError, match="grades_previous and y must have the same length"):
        va.validation_battery([0, 1], [0.1, 0.2], ["A", "B"], order, grades_previous=["A"])
    # one error type serves both callers: the CLI catches UserError, library code ValueError
    with pytest.raises(UserError, match="p must lie in"):
        va.auc_delong([0, 1], [0.1, -0.2])
