"""What a fitted model relies on, for reviewers: global importance, monotonicity, shapes, one firm.

Pure numpy/pandas on a fitted riskmodel estimator (``riskmodel.models``); no plotting, no MLflow.
Every table carries the catalog's Chinese and English names (``name_zh``, ``name_en``) so a
credit committee reads signals, not column names.

Global importance, three ways (:func:`importance_views`)
    ``model``        what the fitted model itself says: LightGBM total split gain; for the
                     scorecard |coefficient| x standard deviation of the feature's WoE on the data
                     (how far the feature moves the log-odds); for the financial baseline
                     |coefficient| summed over the feature's standardised design columns.
    ``contribution`` mean |log-odds contribution| over the rows (``estimator.contributions``):
                     the average push of each feature away from the reference applicant.
    ``permutation``  drop in out-of-time AUC when the feature's column is shuffled (mean of
                     ``n_repeats`` shuffles): what discrimination the model loses without it.

Monotonicity (:func:`monotonicity`)
    The catalog declares a direction per signal (+1: a higher value raises PD, -1: lowers it, 0:
    unknown). The fitted direction is read off the model's contributions: the rows are cut into
    quantile bins of the feature's value, the mean contribution per bin gives a curve, and the sign
    of its rank correlation with the bin order is the direction the model shows. A feature whose
    shown direction is opposite to the declared one is a ``contradiction``; one whose curve goes up
    and down by more than ``tolerance`` is ``non_monotone``; a feature the model does not use is
    ``unused``. The check works the same for every model because it only needs contributions.

Shapes (:func:`shape`)
    Scorecard: points per bin (``Scorecard.table()``). ``gbm_additive``: its tabulated step
    function. Other models: the contribution curve (mean contribution per quantile bin of the
    value). Points are ``-PDO / ln 2 x contribution``: positive points make the score safer.

One firm (:func:`explain_row`)
    Every feature's value, contribution and points for one application, largest risk push first.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from riskmodel.errors import UserError

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("model", "contribution", "permutation")
METHOD_LABELS = {
    "model": "model's own measure (gain, or |coef x spread|)",
    "contribution": "mean |log-odds contribution|",
    "permutation": "permutation: drop in out-of-time AUC",
}
NAME_COLUMNS: tuple[str, ...] = ("name_zh", "name_en")


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def _features_of(estimator) -> list[str]:
    cols = getattr(estimator, "columns_", None)
    if cols is None:
        raise UserError("explain needs a fitted riskmodel estimator (scorecard, gbm_*, financial_baseline); call fit first")
    return [str(c) for c in cols]


def names(features: Sequence[str], catalog: pd.DataFrame | None) -> pd.DataFrame:
    """``feature, name_zh, name_en, family, direction`` for each feature, in order; a feature without
    a catalog row keeps its column name as both names and direction 0."""
    out = pd.DataFrame({"feature": [str(f) for f in features]})
    cat = catalog.drop_duplicates("name").set_index("name") if catalog is not None and "name" in catalog.columns else pd.DataFrame()
    for col, default in (("name_zh", None), ("name_en", None), ("family", ""), ("direction", 0)):
        if col in cat.columns:
            out[col] = out["feature"].map(cat[col])
        else:
            out[col] = np.nan
        fill = out["feature"] if default is None else default
        out[col] = out[col].where(out[col].notna(), fill)
    out["direction"] = out["direction"].astype("int64")
    return out


def _directions(features: Sequence[str], catalog: pd.DataFrame | None, directions: Mapping[str, int] | None) -> dict[str, int]:
    if directions is not None:
        return {f: int(directions.get(f, 0)) for f in features}
    return dict(zip(features, names(features, catalog)["direction"].tolist()))


# --------------------------------------------------------------------------------------------
# Global importance
# --------------------------------------------------------------------------------------------


def _sample(X: pd.DataFrame, y=None, max_rows: int | None = 5000, seed: int = 0):
    if max_rows is None or len(X) <= max_rows:
        return X, (None if y is None else np.asarray(y))
    idx = np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False)
    idx.sort()
    return X.iloc[idx], (None if y is None else np.asarray(y)[idx])


def model_importance(estimator, X: pd.DataFrame | None = None) -> pd.Series:
    """The model's own importance per feature (see the module docstring), 0 for unused features."""
    feats = _features_of(estimator)
    if hasattr(estimator, "booster_"):
        return pd.Series(estimator.booster_.feature_importance("gain"), index=feats, dtype="float64")
    if hasattr(estimator, "selected_") and hasattr(estimator, "binner_"):  # scorecard
        out = pd.Series(0.0, index=feats)
        if X is None:
            raise UserError("the scorecard's |coef x spread| importance needs data X to measure the WoE spread")
        for c in estimator.selected_:
            woe = estimator.binner_.bins_[c].woe_of(X[c])
            out[c] = abs(float(estimator.coef_[c])) * float(np.std(woe))
        return out
    if hasattr(estimator, "owner_") and hasattr(estimator, "design_coef_"):  # financial baseline: standardised design
        vals = np.zeros(len(feats))
        np.add.at(vals, estimator.owner_, np.abs(estimator.design_coef_))
        return pd.Series(vals, index=feats)
    raise UserError(f"no model importance for {type(estimator).__name__}; use the contribution or permutation view")


def contribution_importance(estimator, X: pd.DataFrame, max_rows: int | None = 5000) -> pd.Series:
    """Mean |log-odds contribution| per feature on (a sample of at most ``max_rows`` rows of) X."""
    Xs, _ = _sample(X, max_rows=max_rows)
    return estimator.contributions(Xs).abs().mean(axis=0).astype("float64")


def permutation_importance(
    estimator, X: pd.DataFrame, y, n_repeats: int = 3, seed: int = 0, max_rows: int | None = 20_000
) -> pd.Series:
    """Mean drop in AUC when each feature's column is shuffled (``n_repeats`` shuffles each).

    Use the out-of-time test rows: importance on the training rows rewards overfitting. A negative
    value means the model does as well or better without the feature (noise)."""
    from riskmodel.evaluation import auc

    Xs, ys = _sample(X, y, max_rows=max_rows, seed=seed)
    ys = np.asarray(ys, dtype="float64")
    if ys.min() == ys.max():
        raise UserError("permutation importance needs both defaults and non-defaults in y")
    feats = _features_of(estimator)
    base = auc(ys, estimator.predict_proba(Xs)[:, 1])
    rng = np.random.default_rng(seed)
    drops = np.zeros(len(feats))
    work = Xs.copy()
    for j, c in enumerate(feats):
        original = work[c].copy()
        total = 0.0
        for _ in range(n_repeats):
            work[c] = original.to_numpy()[rng.permutation(len(work))]
            total += base - auc(ys, estimator.predict_proba(work)[:, 1])
        work[c] = original
        drops[j] = total / n_repeats
    return pd.Series(drops, index=feats)


def _rank_table(values: pd.Series, catalog: pd.DataFrame | None) -> pd.DataFrame:
    t = names(list(values.index), catalog)
    t["importance"] = values.to_numpy(dtype="float64")
    pos = t["importance"].clip(lower=0)
    t["share"] = pos / pos.sum() if pos.sum() > 0 else 0.0
    t = t.sort_values(["importance", "feature"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    return t


def importance_views(
    estimator,
    X_test: pd.DataFrame,
    y_test,
    catalog: pd.DataFrame | None = None,
    X_reference: pd.DataFrame | None = None,
    n_repeats: int = 3,
    seed: int = 0,
    max_rows: int | None = 5000,
    contrib: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The three importance tables, keyed by ``METHODS``; each has one row per model feature:
    ``rank, feature, name_zh, name_en, family, direction, importance, share``, largest first.

    ``model`` and ``contribution`` are measured on ``X_reference`` (default: the test rows);
    ``permutation`` always on the (out-of-time) test rows ``X_test, y_test``. ``contrib``: the
    estimator's contributions on ``X_reference`` when already computed (TreeSHAP is costly); the
    reference rows are then used unsampled."""
    ref = X_test if X_reference is None else X_reference
    feats = _features_of(estimator)
    ref = ref[feats]
    Xt = X_test[feats]
    ref_s, _ = _sample(ref, max_rows=None if contrib is not None else max_rows, seed=seed)
    mean_abs = contrib[feats].abs().mean(axis=0).astype("float64") if contrib is not None else contribution_importance(estimator, ref_s, max_rows=None)
    return {
        "model": _rank_table(model_importance(estimator, ref_s), catalog),
        "contribution": _rank_table(mean_abs, catalog),
        "permutation": _rank_table(permutation_importance(estimator, Xt, y_test, n_repeats=n_repeats, seed=seed), catalog),
    }


def importance_summary(views: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per feature with each view's rank and share side by side, ordered by mean rank."""
    out = None
    for m in METHODS:
        if m not in views:
            continue
        v = views[m][["feature", "name_zh", "name_en", "rank", "share"]].rename(columns={"rank": f"rank_{m}", "share": f"share_{m}"})
        out = v if out is None else out.merge(v.drop(columns=["name_zh", "name_en"]), on="feature", how="outer")
    if out is None:
        raise UserError("importance_summary needs at least one of the views " + ", ".join(METHODS))
    ranks = [c for c in out.columns if c.startswith("rank_")]
    out["mean_rank"] = out[ranks].mean(axis=1)
    return out.sort_values(["mean_rank", "feature"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Monotonicity and shapes
# --------------------------------------------------------------------------------------------


def _quantile_curve(values: np.ndarray, contrib: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Mean contribution per quantile bin of the (non-missing) values: (x, mean, count, label)."""
    ok = ~np.isnan(values)
    v, c = values[ok], contrib[ok]
    if v.size == 0:
        return np.empty(0), np.empty(0), np.empty(0, dtype="int64"), []
    edges = np.unique(np.quantile(v, np.linspace(0, 1, n_bins + 1)))
    if edges.size < 2:
        return np.array([v[0]]), np.array([c.mean()]), np.array([v.size]), [f"{v[0]:.4g}"]
    code = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, edges.size - 2)
    count = np.bincount(code, minlength=edges.size - 1)
    sums = np.bincount(code, weights=c, minlength=edges.size - 1)
    xs = np.bincount(code, weights=v, minlength=edges.size - 1)
    keep = count > 0
    labels = [f"[{lo:.4g}, {hi:.4g}{']' if i == edges.size - 2 else ')'}" for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    return (xs[keep] / count[keep], sums[keep] / count[keep], count[keep], [lab for lab, k in zip(labels, keep) if k])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def monotonicity(
    estimator,
    X: pd.DataFrame,
    catalog: pd.DataFrame | None = None,
    directions: Mapping[str, int] | None = None,
    n_bins: int = 10,
    tolerance: float = 0.02,
    relative: float = 0.1,
    max_rows: int | None = 5000,
    seed: int = 0,
    contrib: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Declared direction versus the direction the fitted model shows, one row per numeric feature.

    Columns: ``feature, name_zh, name_en, declared, shown, rank_corr, range, reversal, status``.
    ``declared`` comes from ``directions`` when given, else from the catalog. ``shown`` is the sign
    of the rank correlation between bin order and mean contribution (0 when the curve is flat).
    ``range`` is the spread of the curve (log-odds); ``reversal`` the largest move against the
    shown direction. ``status``: ``contradiction`` (shown == -declared), ``non_monotone`` (a move
    against the direction, declared or else shown, larger than ``tolerance`` log-odds and than
    ``relative`` x the curve's range: unconstrained trees wiggle a little), ``unused``
    (the curve is flat: range below ``tolerance``), ``undeclared`` (declared 0), else ``ok``.
    """
    feats = _features_of(estimator)
    kinds = getattr(estimator, "kinds_", {})
    numeric = [f for f in feats if kinds.get(f, "numeric") == "numeric"]
    if contrib is None:  # else: contributions of X already computed by the caller (rows of X, unsampled)
        Xs, _ = _sample(X[feats], max_rows=max_rows, seed=seed)
        contrib = estimator.contributions(Xs)
    else:
        Xs = X[feats]
    declared = _directions(numeric, catalog, directions)
    rows = []
    for f in numeric:
        _, mean, _, _ = _quantile_curve(Xs[f].to_numpy(dtype="float64", na_value=np.nan), contrib[f].to_numpy(), n_bins)
        spread = float(np.ptp(mean)) if mean.size else 0.0
        rho = _spearman(np.arange(mean.size, dtype="float64"), mean) if spread >= tolerance else 0.0
        shown = int(np.sign(rho)) if abs(rho) > 1e-9 else 0
        d = declared[f]
        ref = d if d != 0 else shown
        steps = np.diff(mean)
        reversal = float(max(0.0, (-ref * steps).max())) if ref != 0 and steps.size else 0.0
        reversal = reversal if reversal > 1e-9 else 0.0  # float noise of equal bins
        if spread < tolerance:
            status = "unused"
        elif d != 0 and shown == -d:
            status = "contradiction"
        elif reversal > max(tolerance, relative * spread):
            status = "non_monotone"
        elif d == 0:
            status = "undeclared"
        else:
            status = "ok"
        rows.append({"feature": f, "declared": d, "shown": shown, "rank_corr": rho, "range": spread, "reversal": reversal, "status": status})
    t = pd.DataFrame(rows, columns=["feature", "declared", "shown", "rank_corr", "range", "reversal", "status"])
    nm = names(numeric, catalog)[["feature", "name_zh", "name_en"]]
    t = nm.merge(t, on="feature", how="right")
    order = {"contradiction": 0, "non_monotone": 1, "undeclared": 2, "ok": 3, "unused": 4}
    return t.sort_values(["status", "range"], key=lambda s: s.map(order) if s.name == "status" else -s, kind="mergesort").reset_index(drop=True)


def points_factor(estimator=None, pdo: float = 20.0) -> float:
    """Points per unit of log-odds (PDO / ln 2), the estimator's own scaling when it has one."""
    scaling = getattr(estimator, "scaling_", None)
    if scaling is not None:
        return float(scaling.factor)
    return pdo / math.log(2)


def shape(
    estimator, feature: str, X: pd.DataFrame | None = None, n_bins: int = 10, max_rows: int | None = 5000, contrib: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The model's response to one feature: ``bin, contribution, points, count, kind``.

    Scorecard: its bins with points (``kind="scorecard_bins"``; a feature the scorecard dropped has
    no rows). ``gbm_additive``: the tabulated step function (``kind="step_function"``; counts from X
    when given). Other models: the mean contribution per quantile bin of X (``kind="contribution_curve"``,
    X required). A last ``Missing`` row holds the missing-value bin where the model has one."""
    feats = _features_of(estimator)
    if feature not in feats:
        raise UserError(f"feature {feature!r} is not in the model; it has {len(feats)} features, e.g. {feats[:5]}")
    factor = points_factor(estimator)
    if hasattr(estimator, "selected_") and hasattr(estimator, "table"):
        t = estimator.table()
        t = t[t["variable"] == feature]
        out = pd.DataFrame({"bin": t["bin"].astype(str).to_numpy(), "points": t["points"].to_numpy(dtype="float64"), "count": t["count"].to_numpy(dtype="float64")})
        out["contribution"] = -out["points"] / factor
        out["kind"] = "scorecard_bins"
        return out[["bin", "contribution", "points", "count", "kind"]]
    if hasattr(estimator, "shape_values_") and callable(getattr(estimator, "shape", None)):
        t = estimator.shape(feature)
        out = pd.DataFrame({"bin": t["bin"].astype(str), "contribution": t["contribution"].astype("float64")})
        out["points"] = -factor * out["contribution"]
        out["count"] = np.nan
        if X is not None and getattr(estimator, "kinds_", {}).get(feature) == "numeric":
            j = feats.index(feature)
            idx = estimator._lookup_index(X[[feature]], j, feature)
            out["count"] = np.bincount(idx, minlength=len(out))[: len(out)].astype("float64")
        out["kind"] = "step_function"
        return out[["bin", "contribution", "points", "count", "kind"]]
    if X is None:
        raise UserError(f"the contribution curve of {type(estimator).__name__} needs data X")
    if contrib is None:
        Xs, _ = _sample(X[feats], max_rows=max_rows)
        contrib = estimator.contributions(Xs)
    else:  # contributions of X computed by the caller
        Xs = X
    contrib = contrib[feature].to_numpy()
    values = Xs[feature].to_numpy(dtype="float64", na_value=np.nan)
    _, mean, count, labels = _quantile_curve(values, contrib, n_bins)
    out = pd.DataFrame({"bin": labels, "contribution": mean, "count": count.astype("float64")})
    miss = np.isnan(values)
    if miss.any():
        out.loc[len(out)] = {"bin": "Missing", "contribution": float(contrib[miss].mean()), "count": float(miss.sum())}
    out["points"] = -factor * out["contribution"]
    out["kind"] = "contribution_curve"
    return out[["bin", "contribution", "points", "count", "kind"]]


# --------------------------------------------------------------------------------------------
# One firm
# --------------------------------------------------------------------------------------------


def explain_row(credit_model, row: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """One application's score broken down by feature.

    ``credit_model``: a :class:`riskmodel.creditmodel.CreditModel`; ``row``: a one-row DataFrame
    with its feature columns. Returns ``(header, table)``: header has pd, score, grade, base_value,
    base_points and the reason codes; the table has ``feature, name_zh, name_en, value,
    contribution, points`` for every model feature, largest risk push (contribution) first.
    Contributions plus ``base_value`` sum to the log-odds of the PD; points plus ``base_points``
    sum to the score."""
    if len(row) != 1:
        raise UserError(f"explain_row needs exactly one row, got {len(row)}")
    row = credit_model.select(row)  # features the model does not use may be absent: shown as missing
    pred = credit_model.predict(row).iloc[0]
    est = credit_model.estimator
    contrib = est.contributions(row).iloc[0]
    factor = float(credit_model.scaling.factor)
    t = names(credit_model.features, credit_model.catalog)[["feature", "name_zh", "name_en"]]
    t["value"] = [row[f].iloc[0] for f in credit_model.features]
    t["contribution"] = contrib.reindex(credit_model.features).to_numpy(dtype="float64")
    t["points"] = -factor * t["contribution"]
    t = t.sort_values(["contribution", "feature"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    base_value = float(est.base_value_)
    header = {
        "pd": float(pred["pd"]),
        "score": float(pred["score"]),
        "grade": str(pred["grade"]),
        "base_value": base_value,
        "base_points": float(credit_model.scaling.score_from_logit(np.array([base_value]))[0]),
        "reasons_zh": [str(pred[c]) for c in pred.index if c.startswith("reason_") and c.endswith("_zh") and pd.notna(pred[c]) and str(pred[c])],
        "reasons_en": [str(pred[c]) for c in pred.index if c.startswith("reason_") and c.endswith("_en") and pd.notna(pred[c]) and str(pred[c])],
    }
    return header, t


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def format_breakdown(table: pd.DataFrame, max_name: int = 40) -> str:
    """A terminal table of :func:`explain_row`'s breakdown, aligned with wide (CJK) characters counted
    as two columns: points, contribution, value, Chinese and English names, feature."""
    def cut(s: str, n: int) -> str:
        out, w = "", 0
        for ch in s:
            cw = _width(ch)
            if w + cw > n - 1 and _width(s) > n:
                return out + "…"
            out, w = out + ch, w + cw
        return out

    def val(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "missing"
        if isinstance(v, (float, np.floating)):
            return f"{v:.4g}"
        return str(v)

    rows = [(f"{p:+.1f}", f"{c:+.3f}", val(v), cut(str(z), 24), cut(str(e), max_name), str(f))
            for p, c, v, z, e, f in zip(table["points"], table["contribution"], table["value"], table["name_zh"], table["name_en"], table["feature"])]
    head = ("points", "log-odds", "value", "名称", "signal", "feature")
    widths = [max(_width(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = (True, True, True, False, False, False)
    lines = ["  ".join(_pad(h, w, r) for h, w, r in zip(head, widths, right)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(_pad(x, w, r) for x, w, r in zip(row, widths, right)).rstrip() for row in rows]
    return "\n".join(lines)
