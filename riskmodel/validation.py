"""Statistical validation battery of a PD model: the tests a bank's model validator runs.

Pure numpy/scipy/pandas: no MLflow, no plotting, no printing, no files. Each statistic is one small
function with its formula and source in the docstring; :func:`validation_battery` runs them all on
one labelled sample and returns a :class:`ValidationResult` (tables, a traffic light per test and an
overall verdict) whose :meth:`ValidationResult.to_dict` is strict JSON (no NaN or infinity: None).

Vocabulary (as in :mod:`riskmodel.evaluation`)
----------------------------------------------
- ``y``: 1 = default, 0 = performing. ``pd``: the model's probability of default in [0, 1].
- ``grades``: rating grade label per row; ``grade_order`` lists every grade from best to worst
  (e.g. ``MasterScale.labels``). Grades of the scale that hold no row are kept as empty rows.
- The PD tested per grade is by default the mean model PD of the grade's obligors (the PD the model
  actually assigned them); pass ``grade_pd`` (grade -> PD, e.g. the master scale's PD per grade) to
  test a fixed PD per grade instead. ``ValidationResult.parameters['pd_source']`` says which.

Traffic lights
--------------
A test's p-value is the probability, under the hypothesis that the model is right, of a result at
least as bad as the one seen. ``p >= 0.05`` green, ``0.001 <= p < 0.05`` yellow, ``p < 0.001`` red
(:data:`P_YELLOW`, :data:`P_RED`; change them with :class:`Lights`). A test that cannot be computed
(an empty grade, one class only) gets ``n/a``. The verdict is the worst light of the tests marked
``in_verdict`` in :attr:`ValidationResult.summary`.

Sources: DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44(3); Sun & Xu (2014), IEEE Signal
Processing Letters 21(11); ECB Banking Supervision, "Instructions for reporting the validation
results of internal models - IRB Pillar I models for credit risk" (2019); BCBS Working Paper 14
(2005), "Studies on the validation of internal rating systems"; Pluto & Tasche (2005), "Thinking
positively", Risk 18(8); Hosmer & Lemeshow (2000), Applied Logistic Regression; Spiegelhalter
(1986), Statistics in Medicine 5(5); Vasicek (2002), "The distribution of loan portfolio value".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import integrate, stats

from riskmodel import evaluation as ev
from riskmodel.errors import UserError

P_YELLOW = 0.05
"""p-values below this are at least yellow."""
P_RED = 0.001
"""p-values below this are red."""
DEFAULT_RHO = 0.04
"""Asset correlation of the correlated binomial test (the value SAS uses for this test)."""
DEFAULT_GAMMA = 0.95
"""Confidence level of the Pluto-Tasche most prudent PD bound."""
DEFAULT_CONFIDENCE = 0.95
"""Two-sided confidence level of the AUC and Gini intervals."""

GREEN, YELLOW, RED, NA = "green", "yellow", "red", "n/a"
_SEVERITY = {NA: -1, GREEN: 0, YELLOW: 1, RED: 2}
_PSI_LIGHT = {"stable": GREEN, "watch": YELLOW, "act": RED, "n/a": NA}


class ValidationInputError(UserError, ValueError):
    """Bad input to a validation function: a :class:`UserError` for the CLI, a ``ValueError`` for callers."""


# --------------------------------------------------------------------------------------------
# Input checks and traffic lights
# --------------------------------------------------------------------------------------------


def _check_inputs(y, pd_) -> tuple[np.ndarray, np.ndarray]:
    """``evaluation._check_yp`` (same length, y in {0, 1}, no NaN PD) plus PD inside [0, 1]."""
    try:
        y, p = ev._check_yp(y, pd_)
    except ValueError as exc:
        raise ValidationInputError(str(exc)) from None
    bad = ~((p >= 0.0) & (p <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationInputError(f"p must lie in [0, 1]; {int(bad.sum())} value(s) outside, first at row {i}: {float(p[i])}")
    return y, p


def _check_fraction(name: str, value: float, low_open: bool = True, high_open: bool = True) -> float:
    v = float(value)
    lo_ok = v > 0 if low_open else v >= 0
    hi_ok = v < 1 if high_open else v <= 1
    if not (math.isfinite(v) and lo_ok and hi_ok):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValidationInputError(f"{name} must lie in {interval}, got {value!r}")
    return v


@dataclass(frozen=True)
class Lights:
    """Traffic-light thresholds on a p-value: green ``p >= yellow_below``, red ``p < red_below``, yellow between."""

    yellow_below: float = P_YELLOW
    red_below: float = P_RED

    def __post_init__(self):
        if not (0 < self.red_below < self.yellow_below < 1):
            raise ValidationInputError(
                f"traffic-light thresholds need 0 < red_below < yellow_below < 1, got red_below={self.red_below}, yellow_below={self.yellow_below}"
            )

    def light(self, p) -> str:
        """'green', 'yellow' or 'red' for a p-value; 'n/a' for None or NaN."""
        if p is None or not np.isfinite(p):
            return NA
        if p < self.red_below:
            return RED
        if p < self.yellow_below:
            return YELLOW
        return GREEN


def worst_light(lights: Iterable[str]) -> str:
    """The most severe of the lights (red > yellow > green); 'n/a' only if none is a colour."""
    worst = NA
    for lt in lights:
        if _SEVERITY.get(lt, -1) > _SEVERITY[worst]:
            worst = lt
    return worst


def _f(x) -> float | None:
    """A finite float or None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------
# Discrimination
# --------------------------------------------------------------------------------------------


def delong(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of one or more scores on the same rows and their DeLong covariance matrix.

    ``scores`` is one array of length n or a (k, n) array (k models scored on the same rows); a
    higher score must mean a higher risk, as a PD does. Let the m defaults have scores X and the n
    performing rows scores Y. DeLong et al. (1988) write the AUC as the mean of psi(X_i, Y_j)
    (1 if X_i > Y_j, 1/2 if equal, 0 otherwise) and estimate its variance from the structural
    components V10_i = mean_j psi(X_i, Y_j) and V01_j = mean_i psi(X_i, Y_j):
    ``Cov(AUC) = S10 / m + S01 / n`` with S10, S01 the sample covariance matrices (across models)
    of the components. Sun & Xu (2014) get the components from midranks in O(n log n):
    with T_z the midrank of a row among all rows, T_x among the defaults and T_y among the
    performing rows, ``V10_i = (T_z(X_i) - T_x(X_i)) / n``, ``V01_j = 1 - (T_z(Y_j) - T_y(Y_j)) / m``
    and ``AUC = (sum_i T_z(X_i) - m (m + 1) / 2) / (m n)``.

    Returns ``(auc, cov)``: AUCs of shape (k,) and covariance of shape (k, k). AUC is NaN when a
    class is missing; the covariance is NaN when either class has fewer than two rows (a sample
    variance needs two).
    """
    s = np.atleast_2d(np.asarray(scores, dtype="float64"))
    y = np.asarray(y, dtype="float64").ravel()
    if s.shape[1] != y.size:
        raise ValidationInputError(f"y and scores must have the same length, got {y.size} and {s.shape[1]}")
    k = s.shape[0]
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    if m == 0 or n == 0:
        return np.full(k, np.nan), np.full((k, k), np.nan)
    x_, y_ = s[:, pos], s[:, ~pos]
    tx = stats.rankdata(x_, axis=1)
    ty = stats.rankdata(y_, axis=1)
    tz = stats.rankdata(np.hstack([x_, y_]), axis=1)
    auc = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    if m < 2 or n < 2:
        return auc, np.full((k, k), np.nan)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return auc, cov


def auc_delong(y, pd_, confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """AUC with its DeLong standard error and a two-sided normal confidence interval, and Gini.

    ``CI = AUC +- z_{(1+c)/2} * se`` clipped to [0, 1]; Gini (accuracy ratio) ``= 2 AUC - 1`` with
    the interval mapped the same way (``se_gini = 2 se``). Keys: ``auc, auc_se, auc_ci_low,
    auc_ci_high, gini, gini_ci_low, gini_ci_high, confidence, n, n_defaults``. With one class only
    the AUC and everything derived from it is None.
    """
    y, p = _check_inputs(y, pd_)
    c = _check_fraction("confidence", confidence)
    a, cov = delong(y, p)
    auc, var = float(a[0]), float(cov[0, 0])
    se = math.sqrt(var) if np.isfinite(var) and var >= 0 else float("nan")
    z = stats.norm.ppf(0.5 + c / 2.0)
    lo, hi = (max(0.0, auc - z * se), min(1.0, auc + z * se)) if np.isfinite(se) else (float("nan"), float("nan"))
    return {
        "auc": _f(auc),
        "auc_se": _f(se),
        "auc_ci_low": _f(lo),
        "auc_ci_high": _f(hi),
        "gini": _f(2 * auc - 1),
        "gini_ci_low": _f(2 * lo - 1),
        "gini_ci_high": _f(2 * hi - 1),
        "confidence": c,
        "n": int(y.size),
        "n_defaults": int(y.sum()),
    }


def auc_decline_test(auc_initial: float, auc_current: float | None, se_current: float | None) -> dict:
    """ECB test of the current AUC against the AUC at development (or initial validation).

    ``S = (AUC_init - AUC_now) / se_now`` with se_now the DeLong standard error of the current AUC;
    under the hypothesis that discrimination has not fallen, S is about N(0, 1). The test is one
    sided: ``p = 1 - Phi(S)``, small when the current AUC is significantly below the initial one
    (ECB instructions for IRB validation reporting, 2019, the 'current AUC vs AUC at initial
    validation/development' test). Keys: ``auc_initial, auc_current, se_current, statistic, p_value``
    (statistic and p None when the current AUC or its standard error is undefined).
    """
    a0 = _check_fraction("auc_initial", auc_initial, low_open=False, high_open=False)
    a1, se = _f(auc_current), _f(se_current)
    stat = p = None
    if a1 is not None and se is not None and se > 0:
        stat = (a0 - a1) / se
        p = float(stats.norm.sf(stat))
    elif a1 is not None and se == 0:  # perfect separation: no sampling spread left to test against
        p = 1.0 if a1 >= a0 else 0.0
    return {"auc_initial": a0, "auc_current": a1, "se_current": se, "statistic": _f(stat), "p_value": _f(p)}


def delong_paired_test(y, pd_a, pd_b) -> dict:
    """DeLong test of the difference of two correlated AUCs (two models scored on the same rows).

    ``z = (AUC_a - AUC_b) / sqrt(Var_a + Var_b - 2 Cov_ab)`` from the DeLong covariance
    (:func:`delong`); ``p_two_sided = 2 (1 - Phi(|z|))`` tests equality, ``p_a_worse = Phi(z)`` is the
    one-sided p-value of 'model a discriminates worse than model b' (small when a is significantly
    below b). Keys: ``auc_a, auc_b, difference, se_difference, correlation, statistic,
    p_two_sided, p_a_worse``; statistics are None when undefined (one class, or identical scores).
    """
    y, pa = _check_inputs(y, pd_a)
    _, pb = _check_inputs(y, pd_b)
    a, cov = delong(y, np.vstack([pa, pb]))
    var_d = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    se_d = math.sqrt(var_d) if np.isfinite(var_d) and var_d > 0 else float("nan")
    z = (a[0] - a[1]) / se_d if np.isfinite(se_d) else float("nan")
    denom = math.sqrt(cov[0, 0] * cov[1, 1]) if np.all(np.isfinite(cov)) and cov[0, 0] * cov[1, 1] > 0 else float("nan")
    return {
        "auc_a": _f(a[0]),
        "auc_b": _f(a[1]),
        "difference": _f(a[0] - a[1]),
        "se_difference": _f(se_d),
        "correlation": _f(cov[0, 1] / denom) if np.isfinite(denom) else None,
        "statistic": _f(z),
        "p_two_sided": _f(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else None,
        "p_a_worse": _f(stats.norm.cdf(z)) if np.isfinite(z) else None,
    }


def cap_curve(y, pd_, points: int | None = None) -> pd.DataFrame:
    """Cumulative accuracy profile: rows sorted from the highest PD down, at each distinct PD the
    share of all rows taken so far (``population_share``) and the share of all defaults among them
    (``default_share``), starting at (0, 0). Columns ``pd_threshold, population_share, default_share``.
    Built on :func:`riskmodel.evaluation.roc_curve` (its ``share`` and ``tpr`` columns).

    ``points``: instead of one row per distinct PD (as many as the rows, for a continuous PD), read
    the CAP polygon at ``points`` evenly spaced population shares from 0 to 1 (linear between
    vertices, so the area and the accuracy ratio are unchanged up to the grid's resolution);
    ``pd_threshold`` is then the lowest PD among the riskiest ``population_share`` of rows."""
    y, p = _check_inputs(y, pd_)
    roc = ev.roc_curve(y, p)
    full = pd.DataFrame({"pd_threshold": roc["threshold"], "population_share": roc["share"], "default_share": roc["tpr"]})
    return full if points is None else _cap_on_grid(full, p, points)


def _cap_on_grid(full: pd.DataFrame, p: np.ndarray, points: int) -> pd.DataFrame:
    if int(points) < 2:
        raise ValidationInputError(f"points must be at least 2, got {points}")
    grid = np.linspace(0.0, 1.0, int(points))
    if p.size == 0:
        return pd.DataFrame({"pd_threshold": np.full(grid.size, np.inf), "population_share": grid, "default_share": np.zeros(grid.size)})
    ds = np.interp(grid, full["population_share"].to_numpy(), full["default_share"].to_numpy())
    desc = np.sort(p)[::-1]
    k = np.ceil(grid * p.size - 1e-9).astype(int)  # rows among the riskiest `grid` share
    thr = np.where(k > 0, desc[np.clip(k - 1, 0, p.size - 1)], np.inf)
    return pd.DataFrame({"pd_threshold": thr, "population_share": grid, "default_share": ds})


def accuracy_ratio_from_cap(cap: pd.DataFrame, default_rate: float) -> float | None:
    """Accuracy ratio from a CAP table: ``AR = a_R / a_P`` where ``a_R`` is the area between the
    model's CAP and the diagonal and ``a_P = (1 - pi) / 2`` the same area for the perfect model
    (all defaults first; ``pi`` the default rate). The CAP is read as a polygon (trapezoids), so tied
    PDs count as a straight segment; then AR equals the Gini ``2 AUC - 1`` exactly (BCBS WP14,
    section on CAP and ROC). None when ``pi`` is 0 or 1."""
    pi = float(default_rate)
    if not (0 < pi < 1):
        return None
    x = cap["population_share"].to_numpy(dtype="float64")
    d = cap["default_share"].to_numpy(dtype="float64")
    area = float(np.sum(np.diff(x) * (d[1:] + d[:-1]) / 2.0))
    return _f((area - 0.5) / ((1.0 - pi) / 2.0))


def discrimination(y, pd_, confidence: float = DEFAULT_CONFIDENCE, cap_points: int | None = 101) -> tuple[dict, pd.DataFrame]:
    """AUC with DeLong CI, Gini with CI, KS (:func:`riskmodel.evaluation.ks`), the accuracy ratio
    read off the full CAP, and the CAP table (on a grid of ``cap_points`` population shares, or
    one row per distinct PD when None; see :func:`cap_curve`). Returns ``(metrics, cap_table)``."""
    y, p = _check_inputs(y, pd_)
    out = auc_delong(y, p, confidence)
    out["ks"] = _f(ev.ks(y, p))
    full = cap_curve(y, p)
    out["accuracy_ratio_cap"] = accuracy_ratio_from_cap(full, y.mean()) if y.size else None
    return out, (full if cap_points is None else _cap_on_grid(full, p, cap_points))


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _counts(n, d, pd_) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast obligor counts, default counts and PDs to float arrays and check them."""
    n = np.asarray(n, dtype="float64")
    d = np.asarray(d, dtype="float64")
    p = np.asarray(pd_, dtype="float64")
    n, d, p = np.broadcast_arrays(n, d, p)
    if np.any((n < 0) | (d < 0) | (d > n)) or np.any(n != np.round(n)) or np.any(d != np.round(d)):
        raise ValidationInputError("obligor and default counts must be whole numbers with 0 <= defaults <= obligors")
    if np.any(~((p >= 0) & (p <= 1))):
        raise ValidationInputError(f"PD must lie in [0, 1], got {p[~((p >= 0) & (p <= 1))][:3].tolist()}")
    return n, d, p


def _scalar_or_array(x: np.ndarray, *inputs) -> float | np.ndarray:
    """A float when every input was a scalar, else the array."""
    return float(x.reshape(())) if all(np.ndim(v) == 0 for v in inputs) else x


def jeffreys_test(n, d, pd_):
    """ECB Jeffreys test of a grade's PD: ``p = BetaCDF(PD; D + 1/2, N - D + 1/2)``.

    With the Jeffreys prior Beta(1/2, 1/2) and D defaults among N obligors, the posterior of the
    default rate is Beta(D + 1/2, N - D + 1/2); p is its mass at or below the PD tested. Small p: the
    data say the true default rate is above the PD, i.e. the PD is underestimated (one-sided).
    ECB instructions for IRB validation reporting (2019), PD back-testing. A PD of exactly 0 gets
    p = 0 (the posterior puts no mass on 0); a PD of 1 gets p = 1. Empty grade (N = 0): NaN.
    Vectorised over arrays of ``n, d, pd``; a scalar call returns a float.
    """
    nn, dd, p = _counts(n, d, pd_)
    out = np.full(nn.shape, np.nan)
    ok = nn > 0
    out[ok] = stats.beta.cdf(p[ok], dd[ok] + 0.5, nn[ok] - dd[ok] + 0.5)
    return _scalar_or_array(out, n, d, pd_)


def binomial_test(n, d, pd_):
    """One-sided binomial test: ``p = P(X >= D)`` for X ~ Binomial(N, PD), defaults independent.

    Small p: more defaults than the PD makes plausible (BCBS WP14, section 5). Empty grade: NaN.
    Vectorised like :func:`jeffreys_test`."""
    nn, dd, p = _counts(n, d, pd_)
    out = np.full(nn.shape, np.nan)
    ok = nn > 0
    out[ok] = stats.binom.sf(dd[ok] - 1, nn[ok], p[ok])
    return _scalar_or_array(out, n, d, pd_)


def _check_rho(rho: float) -> float:
    return _check_fraction("rho", rho, low_open=False, high_open=True)


def vasicek_critical_default_rate(pd_, rho: float = DEFAULT_RHO, q: float = 1 - P_YELLOW):
    """Default rate that a grade with PD ``pd`` exceeds with probability ``1 - q`` in the Vasicek
    one-factor model with asset correlation ``rho``: ``DR_crit = Phi((Phi^-1(PD) + sqrt(rho) Phi^-1(q)) / sqrt(1 - rho))``
    (the q-quantile of the portfolio default rate in an infinitely granular portfolio; Vasicek 2002;
    BCBS WP14, section 5). With ``q = 0.95`` an observed default rate above it is yellow, with
    ``q = 0.999`` red (asymptotically; :func:`binomial_test_correlated` gives the finite-N p-value)."""
    rho = _check_rho(rho)
    q = _check_fraction("q", q)
    p = np.asarray(pd_, dtype="float64")
    with np.errstate(divide="ignore"):
        out = stats.norm.cdf((stats.norm.ppf(p) + math.sqrt(rho) * stats.norm.ppf(q)) / math.sqrt(1 - rho))
    return float(out) if out.ndim == 0 else out


def vasicek_implied_p_value(default_rate, pd_, rho: float = DEFAULT_RHO):
    """Asymptotic (infinitely granular) p-value of an observed default rate: ``1 - q*`` where q*
    solves ``DR_crit(q*) = default_rate`` in :func:`vasicek_critical_default_rate`, i.e.
    ``p = 1 - Phi((sqrt(1 - rho) Phi^-1(DR) - Phi^-1(PD)) / sqrt(rho))``. Ignores binomial noise,
    so it is too harsh on small grades; the battery uses :func:`binomial_test_correlated`."""
    rho = _check_rho(rho)
    if rho == 0:
        raise ValidationInputError("the asymptotic Vasicek p-value needs rho > 0")
    dr = np.asarray(default_rate, dtype="float64")
    p = np.asarray(pd_, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (math.sqrt(1 - rho) * stats.norm.ppf(dr) - stats.norm.ppf(p)) / math.sqrt(rho)
    out = stats.norm.sf(z)
    return float(out) if out.ndim == 0 else out


def _correlated_sf(n: int, d: int, p: float, rho: float) -> float:
    if n == 0:
        return float("nan")
    if d == 0 or p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if rho == 0.0:
        return float(stats.binom.sf(d - 1, n, p))
    a, sr, sq = stats.norm.ppf(p), math.sqrt(rho), math.sqrt(1.0 - rho)

    def f(z: float) -> float:
        return float(stats.binom.sf(d - 1, n, stats.norm.cdf((a + sr * z) / sq)) * stats.norm.pdf(z))

    # The integrand steps from ~0 to ~phi(z) where the conditional PD reaches d / n; split there.
    with np.errstate(divide="ignore"):
        z_star = (sq * stats.norm.ppf(d / n) - a) / sr
    lo, hi = -10.0, 10.0
    cut = float(np.clip(z_star, lo, hi)) if np.isfinite(z_star) else hi
    total = 0.0
    for left, right in ((lo, cut), (cut, hi)):
        if right > left:
            total += integrate.quad(f, left, right, epsabs=1e-14, epsrel=1e-10, limit=200)[0]
    return float(min(max(total, 0.0), 1.0))


def binomial_test_correlated(n, d, pd_, rho: float = DEFAULT_RHO):
    """Binomial test with asset correlation (Vasicek one-factor model): ``p = P(X >= D)``.

    Given the systematic factor Z ~ N(0, 1), obligors default independently with the conditional
    PD ``p(Z) = Phi((Phi^-1(PD) + sqrt(rho) Z) / sqrt(1 - rho))``, whose mean over Z is PD; the
    number of defaults X is then Binomial(N, p(Z)) given Z, and
    ``p = integral of P(Binomial(N, p(z)) >= D) phi(z) dz`` (numerical quadrature, split at the z
    where p(z) = D / N). Correlation widens the distribution of X (and skews it), so for D well
    above the expected count p is larger than the independent binomial test's (BCBS WP14, section 5; Tasche,
    "Validation of internal rating systems and PD estimates", 2006). ``rho = 0`` gives the plain
    binomial test; for large N it approaches :func:`vasicek_implied_p_value`. Empty grade: NaN.
    """
    rho = _check_rho(rho)
    nn, dd, p = _counts(n, d, pd_)
    out = np.array([_correlated_sf(int(ni), int(di), float(pi), rho) for ni, di, pi in zip(nn.ravel(), dd.ravel(), p.ravel())]).reshape(nn.shape)
    return _scalar_or_array(out, n, d, pd_)


def hosmer_lemeshow(y, pd_, n_groups: int = 10, in_sample: bool = False, groups=None) -> tuple[dict, pd.DataFrame]:
    """Hosmer-Lemeshow goodness-of-fit test.

    Rows are put in groups g (by default quantile groups of PD via
    :func:`riskmodel.evaluation.calibration_table`; tied PDs share a group, so there may be fewer
    than ``n_groups``; or by the labels in ``groups``, e.g. grades), and
    ``HL = sum_g (O_g - N_g pbar_g)^2 / (N_g pbar_g (1 - pbar_g))`` with O_g the defaults, N_g the
    rows and pbar_g the mean PD of group g. Under a calibrated model HL is about chi-square with
    ``G - 2`` degrees of freedom on the sample the model was fitted on (``in_sample=True``) and G
    on new data (the default; Hosmer & Lemeshow 2000, ch. 5). Two-sided in effect: PDs too high and
    too low both raise HL. A group with pbar 0 or 1 adds 0 if it matches exactly, else makes HL
    infinite (p = 0). Returns ``(result, table)``; result keys ``statistic, df, p_value, groups,
    in_sample``; table ``group, n, defaults, mean_pd, expected, contribution``.
    """
    y, p = _check_inputs(y, pd_)
    if int(n_groups) < 2:
        raise ValidationInputError(f"n_groups must be at least 2, got {n_groups}")
    if groups is None:
        t = ev.calibration_table(y, p, n_bins=int(n_groups))
        tab = pd.DataFrame({"group": t["bin"].astype(str), "n": t["count"], "defaults": t["bads"], "mean_pd": t["mean_pd"]})
    else:
        g = pd.Series(np.asarray(groups, dtype=object).ravel()).astype("string")
        if g.size != y.size:
            raise ValidationInputError(f"groups and y must have the same length, got {g.size} and {y.size}")
        df = pd.DataFrame({"group": g.fillna(ev.MISSING_BIN), "y": y, "p": p})
        tab = df.groupby("group", sort=False).agg(n=("y", "size"), defaults=("y", "sum"), mean_pd=("p", "mean")).reset_index()
        tab["group"] = tab["group"].astype(str)
    n_g = tab["n"].to_numpy(dtype="float64")
    o_g = tab["defaults"].to_numpy(dtype="float64")
    pb = tab["mean_pd"].to_numpy(dtype="float64")
    e_g = n_g * pb
    v_g = n_g * pb * (1 - pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        contrib = np.where(v_g > 0, (o_g - e_g) ** 2 / v_g, np.where(np.isclose(o_g, e_g), 0.0, np.inf))
    tab = tab.assign(n=tab["n"].astype("int64"), defaults=tab["defaults"].astype("int64"), expected=e_g, contribution=contrib)
    G = len(tab)
    dof = G - 2 if in_sample else G
    stat = float(contrib.sum()) if G else float("nan")
    p_value = float(stats.chi2.sf(stat, dof)) if dof > 0 and not np.isnan(stat) else float("nan")
    return {"statistic": _f(stat), "df": int(dof), "p_value": _f(p_value), "groups": int(G), "in_sample": bool(in_sample)}, tab


def spiegelhalter(y, pd_) -> dict:
    """Spiegelhalter's test of calibration on individual rows.

    The Brier score ``B = mean (y - p)^2`` has, if the PDs are the true probabilities, expectation
    ``mean p (1 - p)`` and variance ``sum (1 - 2p)^2 p (1 - p) / N^2``; standardising gives
    ``Z = sum (y - p)(1 - 2p) / sqrt(sum (1 - 2p)^2 p (1 - p))``, about N(0, 1) (Spiegelhalter
    1986). Two-sided: ``p = 2 (1 - Phi(|Z|))``. Keys ``statistic, p_value``; None when the
    denominator is 0 (every PD is 0, 1/2 or 1)."""
    y, p = _check_inputs(y, pd_)
    w = 1 - 2 * p
    den = float(np.sum(w**2 * p * (1 - p)))
    if not den > 0:
        return {"statistic": None, "p_value": None}
    z = float(np.sum((y - p) * w)) / math.sqrt(den)
    return {"statistic": _f(z), "p_value": _f(2 * stats.norm.sf(abs(z)))}


def pluto_tasche(n, d, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Pluto-Tasche most prudent upper bound of PD per grade (independent defaults).

    ``n, d``: obligors and defaults per grade ordered from best to worst. For grade k pool it with
    every worse grade, ``n_k+ = sum_{j >= k} n_j`` and ``d_k+ = sum_{j >= k} d_j``; the bound is the
    p that solves ``P(Binomial(n_k+, p) <= d_k+) = 1 - gamma``: the largest PD still compatible, at
    confidence gamma, with seeing so few defaults when grade k and all worse grades share that PD
    (Pluto & Tasche 2005). Since ``P(Bin(n, p) <= d) = 1 - I_p(d + 1, n - d)`` (regularised
    incomplete beta), the bound is ``BetaInv(gamma; d + 1, n - d)`` (the Clopper-Pearson upper
    limit); with no defaults it is ``1 - (1 - gamma)^(1 / n)``; with d = n it is 1. The bound
    decreases from worse to better grades by construction. NaN where ``n_k+ = 0``.
    """
    g = _check_fraction("gamma", gamma)
    n, d, _ = _counts(n, d, 0.0)
    n_plus = np.cumsum(n[::-1])[::-1]
    d_plus = np.cumsum(d[::-1])[::-1]
    out = np.full(n.shape, np.nan)
    some = (n_plus > 0) & (d_plus < n_plus)
    out[some] = stats.beta.ppf(g, d_plus[some] + 1, n_plus[some] - d_plus[some])
    out[(n_plus > 0) & (d_plus >= n_plus)] = 1.0
    return out


# --------------------------------------------------------------------------------------------
# Grades
# --------------------------------------------------------------------------------------------


def _grade_labels(grades, order: Sequence, n_rows: int | None = None, name: str = "grades") -> pd.Series:
    g = pd.Series(np.asarray(grades, dtype=object).ravel())
    if n_rows is not None and g.size != n_rows:
        raise ValidationInputError(f"{name} and y must have the same length, got {g.size} and {n_rows}")
    missing = g.isna().to_numpy()
    if missing.any():
        raise ValidationInputError(f"{name} has {int(missing.sum())} missing value(s), first at row {int(np.flatnonzero(missing)[0])}")
    g = g.astype(str)
    unknown = sorted(set(g.unique()) - set(order))
    if unknown:
        raise ValidationInputError(f"{name} holds label(s) not in grade_order: {unknown[:10]}; grade_order is {list(order)}")
    return g


def _check_order(grade_order: Sequence) -> list[str]:
    order = [str(x) for x in grade_order]
    if not order:
        raise ValidationInputError("grade_order is empty; list the grades from best to worst")
    if len(set(order)) != len(order):
        raise ValidationInputError(f"grade_order has repeated labels: {order}")
    return order


def grade_calibration(
    y,
    pd_,
    grades,
    grade_order: Sequence,
    grade_pd: Mapping | None = None,
    rho: float = DEFAULT_RHO,
    gamma: float = DEFAULT_GAMMA,
    lights: Lights = Lights(),
) -> pd.DataFrame:
    """Per-grade calibration table, one row per grade of ``grade_order`` (best first), empty grades kept.

    Columns: ``grade, n, defaults, default_rate, mean_pd, pd_tested, expected_defaults``;
    ``jeffreys_p`` (:func:`jeffreys_test`), ``binomial_p`` (:func:`binomial_test`), ``binomial_rho_p``
    (:func:`binomial_test_correlated` with ``rho``), each with its ``*_light``;
    ``dr_crit_yellow`` and ``dr_crit_red`` (:func:`vasicek_critical_default_rate` at
    ``q = 1 - lights.yellow_below`` and ``1 - lights.red_below``: default rates above them are
    yellow / red in the asymptotic Vasicek test); ``n_cum, defaults_cum, pt_upper_pd``
    (:func:`pluto_tasche` at ``gamma``, pooled with all worse grades); and ``light``, the worst of the
    Jeffreys and correlated binomial lights (the independent binomial test is shown but not
    counted: it ignores default correlation and rejects too often in large grades).

    ``pd_tested`` is the grade's mean model PD, or ``grade_pd[grade]`` when ``grade_pd`` is given.
    """
    y, p = _check_inputs(y, pd_)
    order = _check_order(grade_order)
    g = _grade_labels(grades, order, y.size)
    rho = _check_rho(rho)
    t, _ = ev.bad_rate_by_grade(g.to_numpy(), y, p, order=order)
    t = t.set_index("grade").reindex(order)
    n = t["count"].fillna(0).to_numpy(dtype="float64")
    d = t["bads"].fillna(0).to_numpy(dtype="float64")
    mean_pd = t["mean_pd"].to_numpy(dtype="float64")
    if grade_pd is not None:
        gp = {str(k): v for k, v in dict(grade_pd).items()}
        absent = [k for k in order if k not in gp]
        if absent:
            raise ValidationInputError(f"grade_pd lacks a PD for grade(s) {absent}")
        tested = np.array([float(gp[k]) for k in order])
        if np.any(~((tested >= 0) & (tested <= 1))):
            raise ValidationInputError(f"grade_pd values must lie in [0, 1], got {dict(zip(order, tested.tolist()))}")
    else:
        tested = mean_pd
    has = n > 0
    tp = np.where(np.isfinite(tested), tested, 0.0)  # empty grades have no mean PD; their tests are NaN anyway
    jeff = jeffreys_test(n, d, tp)
    binom_p = binomial_test(n, d, tp)
    rho_p = binomial_test_correlated(n, d, tp, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame(
            {
                "grade": order,
                "n": n.astype("int64"),
                "defaults": d.astype("int64"),
                "default_rate": np.where(has, d / np.where(has, n, 1), np.nan),
                "mean_pd": mean_pd,
                "pd_tested": np.where(has | (grade_pd is not None), tested, np.nan),
                "expected_defaults": n * tp,
            }
        )
    out["jeffreys_p"] = jeff
    out["jeffreys_light"] = [lights.light(v) for v in jeff]
    out["binomial_p"] = binom_p
    out["binomial_light"] = [lights.light(v) for v in binom_p]
    out["binomial_rho_p"] = rho_p
    out["binomial_rho_light"] = [lights.light(v) for v in rho_p]
    ok = np.isfinite(out["pd_tested"].to_numpy(dtype="float64"))
    out["dr_crit_yellow"] = np.where(ok, vasicek_critical_default_rate(tp, rho, 1 - lights.yellow_below), np.nan)
    out["dr_crit_red"] = np.where(ok, vasicek_critical_default_rate(tp, rho, 1 - lights.red_below), np.nan)
    out["n_cum"] = np.cumsum(n[::-1])[::-1].astype("int64")
    out["defaults_cum"] = np.cumsum(d[::-1])[::-1].astype("int64")
    out["pt_upper_pd"] = pluto_tasche(n, d, gamma)
    out["light"] = [worst_light([a, b]) for a, b in zip(out["jeffreys_light"], out["binomial_rho_light"])]
    return out


def portfolio_calibration(
    y, pd_, pd_tested: float | None = None, rho: float = DEFAULT_RHO, lights: Lights = Lights()
) -> dict:
    """Jeffreys, binomial and correlated binomial tests on the whole portfolio: N rows, D defaults,
    PD tested = the mean model PD (or ``pd_tested``, e.g. the obligor-weighted mean of master-scale
    grade PDs). Keys: ``n, defaults, default_rate, pd_tested, jeffreys_p, binomial_p,
    binomial_rho_p`` and a ``*_light`` for each p."""
    y, p = _check_inputs(y, pd_)
    n, d = float(y.size), float(y.sum())
    pt = float(p.mean()) if pd_tested is None and y.size else pd_tested
    out = {"n": int(n), "defaults": int(d), "default_rate": _f(d / n) if n else None, "pd_tested": _f(pt)}
    for key, fn in (("jeffreys", jeffreys_test), ("binomial", binomial_test)):
        v = fn(n, d, pt) if pt is not None else float("nan")
        out[f"{key}_p"], out[f"{key}_light"] = _f(v), lights.light(v)
    v = binomial_test_correlated(n, d, pt, rho) if pt is not None else float("nan")
    out["binomial_rho_p"], out["binomial_rho_light"] = _f(v), lights.light(v)
    return out


# --------------------------------------------------------------------------------------------
# Stability
# --------------------------------------------------------------------------------------------


def migration_matrix(grades_from, grades_to, grade_order: Sequence) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Grade migration between two dates for the same obligors (row i of each array = one obligor).

    Returns ``(counts, shares, n_unrated)``: K x K counts N_ij of obligors in grade i at the first
    date and grade j at the second (rows and columns in ``grade_order``, best first), the row shares
    ``p_ij = N_ij / N_i`` (NaN for a grade empty at the first date), and the number of pairs dropped
    because either grade is missing (not rated at one of the dates)."""
    order = _check_order(grade_order)
    a = pd.Series(np.asarray(grades_from, dtype=object).ravel())
    b = pd.Series(np.asarray(grades_to, dtype=object).ravel())
    if a.size != b.size:
        raise ValidationInputError(f"grades_from and grades_to must have the same length, got {a.size} and {b.size}")
    keep = (a.notna() & b.notna()).to_numpy()
    a = _grade_labels(a[keep], order, name="grades_from")
    b = _grade_labels(b[keep], order, name="grades_to")
    ia = pd.Categorical(a, categories=order).codes
    ib = pd.Categorical(b, categories=order).codes
    K = len(order)
    counts = np.bincount(ia * K + ib, minlength=K * K).reshape(K, K)
    c = pd.DataFrame(counts, index=pd.Index(order, name="from"), columns=pd.Index(order, name="to"))
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = pd.DataFrame(np.where(rows > 0, counts / np.where(rows > 0, rows, 1), np.nan), index=c.index, columns=c.columns)
    return c, s, int((~keep).sum())


def matrix_weighted_bandwidth(counts) -> tuple[float | None, float | None]:
    """ECB matrix-weighted bandwidth of a K x K migration matrix (grades 1..K, best first).

    With N_i the obligors in grade i at the start and p_ij the share migrating to grade j
    (so N_i p_ij = N_ij, the counts):

        MWB_upper = (1 / M_upper) sum_{i=1}^{K-1} sum_{j=i+1}^{K} |i - j| N_i p_ij
        MWB_lower = (1 / M_lower) sum_{i=2}^{K} sum_{j=1}^{i-1} |i - j| N_i p_ij
        M_upper   = sum_{i=1}^{K-1} max(|i - K|, |i - 1|) N_i sum_{j=i+1}^{K} p_ij
        M_lower   = sum_{i=2}^{K} max(|i - K|, |i - 1|) N_i sum_{j=1}^{i-1} p_ij

    (ECB instructions for IRB validation reporting, 2019, customer migrations). Each is the mean
    number of notches moved above (below) the diagonal, scaled by the farthest move possible from
    each starting grade, so it lies in [0, 1]. With grades ordered best first, 'upper' (j > i) are
    downgrades and 'lower' (j < i) upgrades. A side with no moves at all gives 0.
    Returns ``(mwb_upper, mwb_lower)``; None for a matrix with fewer than two grades.
    """
    c = np.asarray(counts, dtype="float64")
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValidationInputError(f"a migration matrix must be square, got shape {c.shape}")
    K = c.shape[0]
    if K < 2:
        return None, None
    i = np.arange(1, K + 1)[:, None]
    j = np.arange(1, K + 1)[None, :]
    dist = np.abs(i - j)
    w = np.maximum(np.abs(i - K), np.abs(i - 1))
    out = []
    for mask in (j > i, j < i):
        num = float(np.sum(dist * c * mask))
        den = float(np.sum(w * c * mask))
        out.append(num / den if den > 0 else 0.0)
    return out[0], out[1]


def _grade_shares(grades, order: list[str], name: str) -> np.ndarray:
    """Shares of the grades of ``order`` among the labels ``grades``, or from a mapping grade -> share
    (or count), e.g. the grade shares of the training population stored with a model."""
    if isinstance(grades, Mapping):
        unknown = sorted(str(k) for k in grades if str(k) not in order)
        if unknown:
            raise ValidationInputError(f"{name} holds grade(s) not in grade_order: {unknown[:10]}; grade_order is {list(order)}")
        given = {str(k): float(v) for k, v in grades.items()}
        counts = np.array([given.get(g, 0.0) for g in order], dtype="float64")
        if not np.all(np.isfinite(counts) & (counts >= 0)):
            raise ValidationInputError(f"{name}: shares must be finite and non-negative, got {given}")
    else:
        g = _grade_labels(grades, order, name=name)
        counts = pd.Categorical(g, categories=order).value_counts().to_numpy(dtype="float64")
    if counts.sum() == 0:
        raise ValidationInputError(f"{name} is empty; concentration needs at least one rated obligor")
    return counts / counts.sum()


def concentration(grades, grade_order: Sequence, reference_grades=None, lights: Lights = Lights()) -> dict:
    """Concentration of obligors across the K grades of ``grade_order`` (empty grades count).

    With R_i the share of obligors in grade i: Herfindahl ``HHI = sum_i R_i^2`` (1/K when spread
    evenly, 1 when all in one grade); the ECB's coefficient of variation
    ``CV = sqrt(K sum_i (R_i - 1/K)^2)`` and Herfindahl index ``HI = 1 + ln((CV^2 + 1) / K) / ln K``
    (= 1 + ln(HHI) / ln K: 0 when even, 1 when all in one grade). With ``reference_grades`` (the
    grades of the development sample, or a mapping grade -> share such as the training grade shares
    stored with a model) the ECB test of H0 'concentration has not increased':
    ``p = 1 - Phi(sqrt(K - 1) (CV_now - CV_ref) / sqrt(CV_now^2 (1/2 + CV_now^2)))``
    (ECB instructions for IRB validation reporting, 2019, concentration in rating grades).
    Keys: ``k, hhi, cv, hi`` and, with a reference, ``hhi_reference, cv_reference, hi_reference,
    statistic, p_value, light``.
    """
    order = _check_order(grade_order)
    K = len(order)
    r = _grade_shares(grades, order, "grades")

    def summary(shares: np.ndarray) -> tuple[float, float, float | None]:
        hhi = float(np.sum(shares**2))
        cv = math.sqrt(K * float(np.sum((shares - 1.0 / K) ** 2)))
        hi = 1.0 + math.log((cv**2 + 1.0) / K) / math.log(K) if K > 1 else None
        return hhi, cv, hi

    hhi, cv, hi = summary(r)
    out: dict = {"k": K, "hhi": hhi, "cv": cv, "hi": _f(hi)}
    if reference_grades is not None:
        h0, cv0, hi0 = summary(_grade_shares(reference_grades, order, "reference_grades"))
        stat = p = None
        if K > 1:
            if cv > 0:
                stat = math.sqrt(K - 1) * (cv - cv0) / math.sqrt(cv**2 * (0.5 + cv**2))
                p = float(stats.norm.sf(stat))
            else:
                p = 1.0  # perfectly even now: concentration cannot have increased
        out.update({"hhi_reference": h0, "cv_reference": cv0, "hi_reference": _f(hi0), "statistic": _f(stat), "p_value": _f(p), "light": lights.light(p)})
    return out


def psi_stability(
    reference_score=None,
    score=None,
    reference_features: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
    columns: Sequence[str] | None = None,
    n_bins: int = 10,
) -> pd.DataFrame:
    """PSI of the score and of each feature, by :func:`riskmodel.evaluation.psi` and
    :func:`riskmodel.evaluation.psi_report` (bins at the reference's quantiles; bands < 0.1 stable,
    0.1-0.25 watch, > 0.25 act). Columns ``variable, psi, band, light`` (stable green, watch yellow,
    act red), the score first (``variable == 'score'``), then features by PSI, largest first.
    ``columns`` defaults to the columns both frames share."""
    rows = []
    if reference_score is not None and score is not None:
        v = ev.psi(reference_score, score, n_bins=n_bins)
        rows.append(pd.DataFrame([{"variable": "score", "psi": v, "band": ev.psi_band(v)}]))
    if reference_features is not None and features is not None:
        cols = list(columns) if columns is not None else [c for c in reference_features.columns if c in set(features.columns)]
        absent = [c for c in cols if c not in reference_features.columns or c not in features.columns]
        if absent:
            raise ValidationInputError(f"PSI column(s) missing from the reference or current features: {absent[:10]}")
        rows.append(ev.psi_report(reference_features, features, cols, n_bins=n_bins))
    if not rows:
        return pd.DataFrame(columns=["variable", "psi", "band", "light"])
    out = pd.concat(rows, ignore_index=True)
    out["light"] = out["band"].map(_PSI_LIGHT).fillna(NA)
    return out


# --------------------------------------------------------------------------------------------
# The battery
# --------------------------------------------------------------------------------------------


def _jsonable(obj):
    """Strict-JSON form: DataFrames as lists of records, numpy scalars as Python, NaN/inf as None."""
    if isinstance(obj, pd.DataFrame):
        return [{str(k): _jsonable(v) for k, v in row.items()} for row in obj.to_dict(orient="records")]
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _f(obj)
    return str(obj) if not isinstance(obj, str) else obj


@dataclass
class ValidationResult:
    """Output of :func:`validation_battery`.

    ``summary``: one row per test with ``section, test, level`` (``portfolio`` or a grade),
    ``statistic, p_value, light, in_verdict``; ``verdict``: worst light over rows with
    ``in_verdict``. The other fields hold the detail: ``discrimination`` (dict, with
    ``auc_vs_initial`` and ``auc_vs_baseline`` sub-dicts when requested), ``cap`` (CAP table),
    ``grades`` (per-grade calibration, :func:`grade_calibration`), ``portfolio`` (portfolio-level
    calibration: binomial family, ``hosmer_lemeshow``, ``spiegelhalter``), ``hosmer_lemeshow``
    (group table), ``concentration``, ``migration`` (counts, shares, bandwidths; None without
    previous grades), ``psi`` (None without reference data) and ``parameters`` (rho, gamma,
    thresholds, PD source, ...).
    """

    verdict: str
    summary: pd.DataFrame
    discrimination: dict
    cap: pd.DataFrame
    grades: pd.DataFrame
    portfolio: dict
    hosmer_lemeshow: pd.DataFrame
    concentration: dict
    parameters: dict
    migration: dict | None = None
    psi: pd.DataFrame | None = None

    def to_dict(self) -> dict:
        """Everything as strict JSON types (``json.dumps(..., allow_nan=False)`` works). Migration
        matrices become ``{"grades": [...], "counts": [[...]], "shares": [[...]]}``."""
        mig = None
        if self.migration is not None:
            mig = {k: v for k, v in self.migration.items() if k not in ("counts", "shares")}
            mig["grades"] = list(self.migration["counts"].index)
            mig["counts"] = self.migration["counts"].to_numpy().tolist()
            mig["shares"] = self.migration["shares"].to_numpy().tolist()
        return _jsonable(
            {
                "verdict": self.verdict,
                "summary": self.summary,
                "discrimination": self.discrimination,
                "cap": self.cap,
                "grades": self.grades,
                "portfolio": self.portfolio,
                "hosmer_lemeshow": self.hosmer_lemeshow,
                "concentration": self.concentration,
                "migration": mig,
                "psi": self.psi,
                "parameters": self.parameters,
            }
        )


def validation_battery(
    y,
    pd_,
    grades,
    grade_order: Sequence,
    *,
    grade_pd: Mapping | None = None,
    auc_initial: float | None = None,
    auc_initial_in_verdict: bool = True,
    pd_baseline=None,
    grades_previous=None,
    reference_grades=None,
    reference_score=None,
    score=None,
    reference_features: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
    feature_columns: Sequence[str] | None = None,
    psi: pd.DataFrame | None = None,
    rho: float = DEFAULT_RHO,
    gamma: float = DEFAULT_GAMMA,
    confidence: float = DEFAULT_CONFIDENCE,
    hl_groups: int = 10,
    hl_in_sample: bool = False,
    lights: Lights = Lights(),
    psi_bins: int = 10,
    cap_points: int | None = 101,
) -> ValidationResult:
    """Run the validation battery on one labelled sample (out-of-time set or a later batch).

    Required: outcomes ``y``, model PDs ``pd_``, ``grades`` (label per row) and ``grade_order``
    (every grade, best first). Optional inputs switch on more tests:

    - ``grade_pd``: test a fixed PD per grade (master scale) instead of the grade's mean model PD;
    - ``auc_initial``: AUC at development -> :func:`auc_decline_test` (in the verdict unless
      ``auc_initial_in_verdict=False``: e.g. when the reference is an in-sample AUC);
    - ``pd_baseline``: a baseline model's PDs on the same rows -> :func:`delong_paired_test`; its light
      uses ``p_a_worse`` (red when the model is significantly *worse* than the baseline);
    - ``grades_previous``: each row's grade at an earlier date -> :func:`migration_matrix` and
      :func:`matrix_weighted_bandwidth` (reported, no light);
    - ``reference_grades``: grades of the development sample (labels, or a mapping grade -> share)
      -> the ECB concentration test (in the verdict);
    - ``reference_score``/``score`` and ``reference_features``/``features``: PSI (:func:`psi_stability`);
      ``score`` defaults to ``pd_``. The score's PSI light is in the verdict, features' are not.
    - ``psi``: instead, a PSI table computed elsewhere (columns ``variable, psi, band``, the score's
      row named ``score``; e.g. against a stored training profile, :mod:`riskmodel.monitoring`).

    Tests in the verdict: AUC decline, baseline comparison, Jeffreys and correlated binomial (per
    grade and portfolio), Hosmer-Lemeshow, Spiegelhalter, concentration, score PSI. Shown with a
    light but not in the verdict: the independent binomial test (ignores correlation) and feature PSI.
    """
    y, p = _check_inputs(y, pd_)
    order = _check_order(grade_order)
    g = _grade_labels(grades, order, y.size)
    rho = _check_rho(rho)
    gamma = _check_fraction("gamma", gamma)

    disc, cap = discrimination(y, p, confidence, cap_points)
    rows: list[dict] = []

    def add(section, test, level, statistic, p_value, light, in_verdict=True):
        rows.append({"section": section, "test": test, "level": level, "statistic": _f(statistic), "p_value": _f(p_value), "light": light, "in_verdict": in_verdict})

    if auc_initial is not None:
        t = auc_decline_test(auc_initial, disc["auc"], disc["auc_se"])
        t["light"] = lights.light(t["p_value"])
        t["in_verdict"] = bool(auc_initial_in_verdict)
        disc["auc_vs_initial"] = t
        add("discrimination", "auc_vs_initial", "portfolio", t["statistic"], t["p_value"], t["light"], bool(auc_initial_in_verdict))
    if pd_baseline is not None:
        t = delong_paired_test(y, p, pd_baseline)
        t["light"] = lights.light(t["p_a_worse"])
        disc["auc_vs_baseline"] = t
        add("discrimination", "auc_vs_baseline", "portfolio", t["statistic"], t["p_a_worse"], t["light"])

    gt = grade_calibration(y, p, g, order, grade_pd=grade_pd, rho=rho, gamma=gamma, lights=lights)
    if grade_pd is not None:
        pt = float((gt["n"] * gt["pd_tested"]).sum() / max(gt["n"].sum(), 1))
    else:
        pt = None
    port = portfolio_calibration(y, p, pd_tested=pt, rho=rho, lights=lights)
    hl, hl_tab = hosmer_lemeshow(y, p, n_groups=hl_groups, in_sample=hl_in_sample)
    hl["light"] = lights.light(hl["p_value"])
    sp = spiegelhalter(y, p)
    sp["light"] = lights.light(sp["p_value"])
    port["hosmer_lemeshow"], port["spiegelhalter"] = hl, sp

    for test, key, counted in (("jeffreys", "jeffreys", True), ("binomial", "binomial", False), ("binomial_correlated", "binomial_rho", True)):
        add("calibration", test, "portfolio", None, port[f"{key}_p"], port[f"{key}_light"], counted)
        for _, r in gt.iterrows():
            add("calibration", test, r["grade"], None, r[f"{key}_p"], r[f"{key}_light"], counted)
    add("calibration", "hosmer_lemeshow", "portfolio", hl["statistic"], hl["p_value"], hl["light"])
    add("calibration", "spiegelhalter", "portfolio", sp["statistic"], sp["p_value"], sp["light"])

    conc = concentration(g, order, reference_grades, lights)
    if reference_grades is not None:
        add("stability", "concentration_cv", "portfolio", conc["statistic"], conc["p_value"], conc["light"])

    mig = None
    if grades_previous is not None:
        prev = np.asarray(grades_previous, dtype=object).ravel()
        if prev.size != y.size:
            raise ValidationInputError(f"grades_previous and y must have the same length, got {prev.size} and {y.size}")
        counts, shares, n_unrated = migration_matrix(prev, g.to_numpy(dtype=object), order)
        up, low = matrix_weighted_bandwidth(counts.to_numpy())
        diag = int(np.trace(counts.to_numpy()))
        total = int(counts.to_numpy().sum())
        mig = {"counts": counts, "shares": shares, "n_pairs": total, "n_unrated": n_unrated, "share_unchanged": _f(diag / total) if total else None, "mwb_upper": up, "mwb_lower": low}

    psi_tab = None
    if psi is not None:
        absent = [c for c in ("variable", "psi", "band") if c not in psi.columns]
        if absent:
            raise ValidationInputError(f"the psi table lacks column(s) {absent}; it needs variable, psi and band")
        psi_tab = psi[["variable", "psi", "band"]].reset_index(drop=True)
        psi_tab["light"] = psi_tab["band"].map(_PSI_LIGHT).fillna(NA)
    elif reference_score is not None or reference_features is not None:
        psi_tab = psi_stability(reference_score, score if score is not None else p, reference_features, features, feature_columns, psi_bins)
    if psi_tab is not None:
        for _, r in psi_tab.iterrows():
            add("stability", "psi", r["variable"], r["psi"], None, r["light"], bool(r["variable"] == "score"))

    summary = pd.DataFrame(rows, columns=["section", "test", "level", "statistic", "p_value", "light", "in_verdict"])
    verdict = worst_light(summary.loc[summary["in_verdict"], "light"]) if len(summary) else NA
    params = {
        "rho": rho,
        "gamma": gamma,
        "confidence": float(confidence),
        "yellow_below": lights.yellow_below,
        "red_below": lights.red_below,
        "pd_source": "master_scale" if grade_pd is not None else "mean_model_pd",
        "auc_initial_in_verdict": bool(auc_initial_in_verdict),
        "hl_groups": int(hl_groups),
        "hl_in_sample": bool(hl_in_sample),
        "grade_order": order,
        "psi_bins": int(psi_bins),
        "cap_points": cap_points,
    }
    return ValidationResult(
        verdict=verdict,
        summary=summary,
        discrimination=disc,
        cap=cap,
        grades=gt,
        portfolio=port,
        hosmer_lemeshow=hl_tab,
        concentration=conc,
        parameters=params,
        migration=mig,
        psi=psi_tab,
    )
