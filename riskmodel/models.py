"""Credit risk estimators: scikit-learn classifiers with additive, explainable log-odds.

Four models, built by ``make_model(name, directions=None, **params)``:

``financial_baseline`` (:class:`FinancialBaseline`)
    Logistic regression on whatever columns it is given (the caller passes the finance and firm
    families: what a traditional credit process sees). Numbers are median-imputed, with a
    missing-value indicator for every column that had missing values in training, then
    standardised; strings are one-hot encoded with rare categories grouped.
``scorecard`` (:class:`Scorecard`)
    Monotonic WoE binning (:mod:`riskmodel.binning`, directions from the catalog), selection by
    information value and correlation, a sign check, logistic regression on WoE, and points on a
    PDO scale (:class:`riskmodel.grades.PDOScaling`; defaults: 600 points at good:bad odds 50:1,
    20 points to double the odds).
``gbm_monotone`` (:class:`GBMMonotone`)
    LightGBM with monotone constraints from the directions. Contributions are TreeSHAP
    (``pred_contrib``): exact but costly (see ``benchmarks/bench_explain.py``).
``gbm_additive`` (:class:`GBMAdditive`)
    LightGBM where every tree uses one feature (``interaction_constraints``), monotone too. The model
    is a sum of one step function per feature; after fitting, each step function is tabulated, so
    contributions and PD are an ``np.searchsorted`` per column: millions of rows per second.

Common contract (team contract 4)
    * ``fit(X, y, sample_weight=None)``: ``X`` a DataFrame (numeric columns float, NaN allowed;
      string/category columns are categorical) or a numeric array; ``y`` in {0, 1} with 1 = default;
      ``sample_weight`` one non-negative number per row (row ``i`` counts ``sample_weight[i]`` times:
      reject inference's reweighting and augmentation use it). Validation happens in one place
      (``_CreditEstimator._validate``) and raises :class:`ModelInputError`, which is both a
      ``riskmodel.errors.UserError`` (one-line CLI message) and a ``ValueError`` (scikit-learn).
    * ``predict_proba(X)[:, 1]`` is the PD; ``decision_function(X)`` its log-odds.
    * ``contributions(X)`` -> DataFrame (rows of X x ``feature_names_in_``) of additive log-odds
      contributions; ``base_value_ + contributions(X).sum(axis=1) == decision_function(X)``.
      The reference (where every contribution is 0) is "the average applicant" of the training
      data for every model; each class documents exactly what that means for it. A positive
      contribution means "this feature makes this firm riskier than the reference", which is what
      adverse-action reason codes report.
    * Columns are matched by name; a different order is accepted and re-ordered.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from riskmodel import config
from riskmodel.binning import MonotonicBinner, category_codes, is_categorical
from riskmodel.errors import UserError
from riskmodel.grades import PDOScaling

log = logging.getLogger(__name__)

MODEL_NAMES = ("financial_baseline", "scorecard", "gbm_monotone", "gbm_additive")


class ModelInputError(UserError, ValueError):
    """Bad input to a model (shape, columns, target, parameters); the message says what to fix."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    """Median of the non-missing ``x`` when row ``i`` counts ``w[i]`` times: for whole-number weights
    exactly ``np.median`` of the repeated values; NaN when no row with weight is left."""
    ok = ~np.isnan(x) & (w > 0)
    if not ok.any():
        return float("nan")
    o = np.argsort(x[ok], kind="stable")
    xs, c = x[ok][o], np.cumsum(w[ok][o])
    half = c[-1] / 2.0
    lo = xs[min(np.searchsorted(c, half, side="left"), len(xs) - 1)]
    hi = xs[min(np.searchsorted(c, half, side="right"), len(xs) - 1)]
    return float((lo + hi) / 2.0)


def _corr(frame: pd.DataFrame, w: np.ndarray | None) -> pd.DataFrame:
    """Pearson correlations of the columns (weighted when ``w`` is given); 0 where undefined."""
    if w is None:
        return frame.corr().fillna(0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.cov(frame.to_numpy(dtype="float64"), rowvar=False, aweights=w)
        d = np.sqrt(np.diag(c))
        r = c / np.outer(d, d)
    return pd.DataFrame(np.nan_to_num(r, nan=0.0), index=frame.columns, columns=frame.columns)


def _check_directions(directions) -> dict:
    if directions is None:
        return {}
    if not isinstance(directions, dict):
        raise ModelInputError(f"directions must be a dict feature -> -1/0/+1, got {type(directions).__name__}")
    bad = {k: v for k, v in directions.items() if v not in (-1, 0, 1)}
    if bad:
        raise ModelInputError(f"directions must be -1, 0 or +1; fix {dict(list(bad.items())[:5])}")
    return {str(k): int(v) for k, v in directions.items()}


class _CreditEstimator(ClassifierMixin, BaseEstimator):
    """Shared input validation, prediction and tags. Subclasses implement ``_fit`` and ``_contrib``."""

    #: True when the model guarantees that PD never falls as a +1 feature rises (and vice versa).
    enforces_directions = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    # ---- validation: the one place inputs are checked --------------------------------------
    def _validate(self, X, y=None, reset: bool = False) -> tuple[pd.DataFrame, np.ndarray | None]:
        """Return X as a DataFrame with the fitted columns in fitted order (and y as int 0/1)."""
        if not reset:
            check_is_fitted(self, "columns_")
        named = isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)
        if named and (reset or hasattr(self, "feature_names_in_")):
            if X.columns.duplicated().any():
                dup = X.columns[X.columns.duplicated()].unique().tolist()
                raise ModelInputError(f"X has duplicate column names {dup[:10]}; give every column a unique name")
            if not reset and hasattr(self, "feature_names_in_"):
                names = list(self.feature_names_in_)
                missing = [c for c in names if c not in X.columns]
                unseen = [c for c in X.columns if c not in set(names)]
                if missing or unseen:
                    msg = "The feature names should match those that were passed during fit.\n"
                    if unseen:
                        msg += "Feature names unseen at fit time:\n" + "".join(f"- {c}\n" for c in unseen[:10])
                    if missing:
                        msg += "Feature names seen at fit time, yet now missing:\n" + "".join(
                            f"- {c}\n" for c in missing[:10]
                        )
                    msg += "Pass exactly the columns the model was trained on (CreditModel selects them for you)."
                    raise ModelInputError(msg)
                X = X[names]
            if len(X) == 0 or X.shape[1] == 0:
                raise ModelInputError(
                    f"X has {len(X)} rows and {X.shape[1]} columns; a model needs at least one row and one column"
                )
            validate_data(self, X, reset=reset, skip_check_array=True)
            frame = X
        else:
            if isinstance(X, pd.DataFrame):  # non-string column names: treat as an array
                X = X.to_numpy()
            arr = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype="numeric")
            frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])], copy=False)
        if reset:
            self.columns_ = [str(c) for c in frame.columns]
            self.kinds_ = {c: ("categorical" if is_categorical(frame[c]) else "numeric") for c in self.columns_}
        frame = self._coerce(frame)
        if y is None:
            return frame, None
        try:
            y = column_or_1d(y, warn=True)
        except ValueError as exc:
            raise ModelInputError(f"{exc}; pass y as one 0/1 value per row (1 = default)") from None
        if len(y) != len(frame):
            raise ModelInputError(f"y has {len(y)} values but X has {len(frame)} rows; pass one target per row")
        if pd.isna(y).any():
            raise ModelInputError(f"y has {int(pd.isna(y).sum())} missing values; drop those rows or fill the target")
        try:
            check_classification_targets(y)
        except ValueError as exc:
            raise ModelInputError(f"{exc}; y must be 0 (no default) or 1 (default)") from None
        y_type = type_of_target(y, input_name="y")
        if y_type != "binary":
            raise ModelInputError(
                f"Only binary classification is supported. The type of the target is {y_type}; "
                "pass y with 1 = default and 0 = no default"
            )
        uniq = np.unique(y)
        if not set(uniq.tolist()) <= {0, 1}:
            raise ModelInputError(
                f"y must be 0 (no default) or 1 (default), found values {uniq[:10].tolist()}; recode the target"
            )
        if len(uniq) < 2:
            raise ModelInputError(
                f"y has only one class ({uniq.tolist()}); a classifier needs both defaults (1) and non-defaults (0)"
            )
        return frame, y.astype("int64")

    def _coerce(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns to float64 (clear error on text or inf); categorical columns untouched.
        A frame that needs no conversion is returned as it is (no copy)."""
        out = {}
        changed = list(frame.columns) != self.columns_
        for c in self.columns_:
            col = frame[c]
            if self.kinds_[c] == "categorical":
                out[c] = col
                continue
            changed = changed or col.dtype != np.float64
            if not (pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)):
                conv = pd.to_numeric(col, errors="coerce")
                bad = conv.isna() & col.notna()
                if bad.any():
                    rows = col.index[bad.to_numpy()][:5].tolist()
                    raise ModelInputError(
                        f"column {c!r} was numeric in training but has non-numeric values "
                        f"{col[bad].astype(str).unique()[:3].tolist()} at rows {rows}; fix or blank them"
                    )
                col = conv
            arr = col.to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(arr).any():
                rows = col.index[np.isinf(arr)][:5].tolist()
                raise ModelInputError(f"column {c!r} has infinite values at rows {rows}; replace them with NaN or a number")
            out[c] = arr
        if not changed:
            return frame
        return pd.DataFrame(out, index=frame.index, copy=False)

    def _check_fit_columns(self, X: pd.DataFrame) -> None:
        empty = [c for c in self.columns_ if X[c].isna().all()]
        if empty:
            raise ModelInputError(f"columns {empty[:10]} are missing in every training row; drop them before fitting")
        for c in self.columns_:
            if X[c].nunique(dropna=True) <= 1:
                log.warning("feature %r is constant in training; it cannot affect the model", c)

    def _check_weights(self, sample_weight, X: pd.DataFrame, y: np.ndarray) -> np.ndarray | None:
        """``sample_weight`` as float64 (None stays None): one finite, non-negative number per row,
        not all zero, with weight on both classes."""
        if sample_weight is None:
            return None
        try:
            w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        except ValueError as exc:
            raise ModelInputError(f"sample_weight: {exc}; pass one non-negative number per row") from None
        for cls in (0, 1):
            if not w[y == cls].sum() > 0:
                raise ModelInputError(
                    f"sample_weight is zero on every row of class {cls}; a classifier needs weight on both "
                    "defaults (1) and non-defaults (0)"
                )
        return w

    # ---- public API ------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` and ``y`` (1 = default); ``sample_weight``: row ``i`` counts
        ``sample_weight[i]`` times (None: every row once)."""
        if y is None:
            raise ModelInputError(
                f"{type(self).__name__} requires y to be passed, but the target y is None; pass y (1 = default)"
            )
        X, y = self._validate(X, y, reset=True)
        w = self._check_weights(sample_weight, X, y)
        self._check_fit_columns(X)
        self.feature_range_ = {
            c: (float(np.nanmin(X[c])), float(np.nanmax(X[c]))) for c in self.columns_ if self.kinds_[c] == "numeric"
        }
        self.classes_ = np.array([0, 1])
        self.directions_ = _check_directions(self.directions)
        self._fit(X, y, w)
        return self

    def contributions(self, X, check_input: bool = True) -> pd.DataFrame:
        """Additive log-odds contributions per feature (rows of X x features); see the class docstring
        for the reference. ``base_value_ + row sum`` is the log-odds of default.

        ``check_input=False`` skips the input checks and conversions, as scikit-learn's trees allow:
        only for a DataFrame with the training columns in order, numeric ones float64 with no
        infinities, such as batch scoring's rows after :func:`riskmodel.scoring.validate_chunk`
        (which has checked them already; the checks run per column for every chunk).
        """
        if check_input:
            X, _ = self._validate(X)
        else:
            check_is_fitted(self, "columns_")
        return pd.DataFrame(self._contrib(X), index=X.index, columns=self.columns_, copy=False)

    def decision_function(self, X) -> np.ndarray:
        """Log-odds of default."""
        X, _ = self._validate(X)
        return self._logit(X)

    def predict_proba(self, X) -> np.ndarray:
        """Columns: P(no default), P(default)."""
        X, _ = self._validate(X)
        p = _sigmoid(self._logit(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype("int64")

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        return self.base_value_ + self._contrib(X).sum(axis=1)


# ==== financial baseline ================================================================================
class FinancialBaseline(_CreditEstimator):
    """Logistic regression on the columns given (the finance + firm features in the benchmark).

    Numeric columns: median imputation, a missing indicator for each column with missing values in
    training, standardisation. String columns: one-hot, categories rarer than ``min_category_share``
    (and unseen ones) grouped into "(other)", missing as its own level "(missing)" (a category of
    the data that bears one of these names is still its own level). L2-regularised (``C``).

    Contributions: ``coef * (z - mean_train(z))`` summed over the design columns of each feature;
    all design columns are standardised, so the reference is the training mean of every column
    (the average applicant) and ``base_value_`` is the intercept. ``directions`` are not enforced;
    features whose fitted sign contradicts them are listed in ``sign_conflicts_``.

    Attributes: ``feature_names_in_`` (when fitted on a DataFrame), ``coef_`` (per design column,
    Series), ``intercept_``, ``base_value_``, ``sign_conflicts_``.
    """

    def __init__(self, directions=None, C: float = 1.0, min_category_share: float = 0.02, max_iter: int = 2000):
        self.directions = directions
        self.C = C
        self.min_category_share = min_category_share
        self.max_iter = max_iter

    def _raw_design(self, X: pd.DataFrame) -> np.ndarray:
        """Design matrix before standardisation; columns follow ``owner_`` (feature of each column)."""
        cols = []
        for c in self.columns_:
            if self.kinds_[c] == "numeric":
                x = X[c].to_numpy(dtype="float64")
                miss = np.isnan(x)
                cols.append(np.where(miss, self.medians_[c], x)[:, None])
                if c in self.indicators_:
                    cols.append(miss.astype("float64")[:, None])
            else:
                levels = self.levels_[c]  # the known categories, then the pooled "(other)" and "(missing)" levels
                s = X[c]
                isna = s.isna().to_numpy()
                codes = category_codes(s, levels[:-2])
                codes = np.where(codes < 0, len(levels) - 2, codes)
                codes = np.where(isna, len(levels) - 1, codes)
                cols.append((codes[:, None] == np.arange(len(levels))).astype("float64"))
        return np.hstack(cols)

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        return (self._raw_design(X) - self.mean_) / self.scale_

    def _fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None = None) -> None:
        from sklearn.linear_model import LogisticRegression

        if w is None:
            self.medians_ = {c: float(np.nanmedian(X[c])) for c in self.columns_ if self.kinds_[c] == "numeric"}
        else:
            self.medians_ = {c: _weighted_median(X[c].to_numpy(dtype="float64"), w) for c in self.columns_ if self.kinds_[c] == "numeric"}
        self.indicators_ = [c for c in self.medians_ if X[c].isna().any()]
        self.levels_ = {}
        n = len(X) if w is None else float(w.sum())
        owner = []
        for j, c in enumerate(self.columns_):
            if self.kinds_[c] == "categorical":
                if w is None:
                    counts = X[c].dropna().astype(str).value_counts()
                else:
                    ok = X[c].notna().to_numpy()
                    counts = pd.Series(w[ok]).groupby(X[c][ok].astype(str).to_numpy()).sum()
                frequent = sorted(counts[counts >= self.min_category_share * n].index.tolist())
                self.levels_[c] = [*frequent, "(other)", "(missing)"]
                owner.extend([j] * len(self.levels_[c]))
            else:
                owner.extend([j] * (2 if c in self.indicators_ else 1))
        R = self._raw_design(X)
        self.mean_ = np.average(R, axis=0, weights=w)
        scale = np.sqrt(np.average((R - self.mean_) ** 2, axis=0, weights=w))
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = (R - self.mean_) / self.scale_
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter)
        lr.fit(Z, y, sample_weight=w)
        self.n_iter_ = int(lr.n_iter_[0])
        owner = np.asarray(owner, dtype="int64")
        self.owner_ = owner
        self.design_coef_ = lr.coef_[0].copy()
        self.intercept_ = float(lr.intercept_[0])
        self.base_value_ = self.intercept_
        names = []
        for c in self.columns_:
            if self.kinds_[c] == "numeric":
                names.append(c)
                if c in self.indicators_:
                    names.append(f"{c}__missing")
            else:
                names.extend(f"{c}={lev}" for lev in self.levels_[c])
        self.coef_ = pd.Series(self.design_coef_, index=names, name="coef")
        self.sign_conflicts_ = [
            c for c in self.medians_
            if self.directions_.get(c, 0) != 0 and np.sign(self.coef_[c]) == -self.directions_[c]
        ]
        if self.sign_conflicts_:
            log.info("financial_baseline: fitted sign contradicts the direction of %s", self.sign_conflicts_)

    def _contrib(self, X: pd.DataFrame) -> np.ndarray:
        # sum each feature's design columns: Z @ (coef placed in the feature's column)
        A = np.zeros((len(self.owner_), len(self.columns_)))
        A[np.arange(len(self.owner_)), self.owner_] = self.design_coef_
        return self._design(X) @ A


# ==== scorecard ==========================================================================================
class Scorecard(_CreditEstimator):
    """Monotonic WoE scorecard: binning -> IV/correlation selection -> sign check -> LR -> points.

    Steps
    1. :class:`riskmodel.binning.MonotonicBinner` bins every column (numeric: monotone in the
       feature's direction; unknown direction: the better monotone fit by IV; strings: by category).
    1b. ``min_bin_share="auto"``: about 100 defaults per bin, clipped to 2%..5% of the rows (5% on
       German credit; 2% on 50,000 rows at a 12% default rate).
    2. Keep features with IV >= ``min_iv`` (``"auto"``: 0.02, lowered on large samples to a 0.1%
       significance level, see ``_iv_thresholds``); walking down by IV, drop a feature whose WoE correlates
       with an already kept one at ``|r| > max_corr`` (the weaker of each pair goes). If no feature
       reaches ``min_iv``, the best one is kept (with a warning) so the model is never empty.
    3. Logistic regression of default on the WoE columns (L2, ``C``). WoE here is
       ln(event share / non-event share), so every coefficient should be positive; with
       ``sign_check`` features with a non-positive coefficient are dropped one at a time (the most
       negative first) and the regression refitted. This is what keeps the scorecard monotone in
       each feature's direction: monotone WoE times a positive coefficient.
    4. Points with PDO scaling (``base_score`` points at good:bad odds ``base_odds``, ``pdo`` points
       to double them): ``score = offset + factor * ln(odds_good)``; a bin's points are
       ``-factor * coef * (woe - reference)`` and ``base_points_ = offset - factor * base_value_``,
       so ``score = base_points_ + sum of the firm's bin points``.

    Contributions and reference (``reference``):
      * ``"neutral"`` (default): contribution = ``coef * WoE``. WoE 0 is a bin whose default rate
        equals the portfolio's, so a positive contribution means "this attribute makes the firm
        riskier than the average applicant", and a firm better than average everywhere gets no
        reason. ``base_value_`` is the intercept. This matches the other models' "average
        applicant" reference, so reason codes mean the same across models.
      * ``"best"``: contribution = ``coef * (WoE - WoE of the feature's best bin)``: the US
        adverse-action "points below the maximum" method; every feature with a non-best bin is a
        candidate reason, even for good firms.

    Attributes: ``binner_`` (all features), ``selected_`` (features in the model, in order),
    ``coef_`` (Series over selected), ``intercept_``, ``base_value_``, ``base_points_``,
    ``iv_`` (Series, all features), ``min_iv_`` (threshold per feature), ``min_bin_share_``,
    ``dropped_`` (feature -> reason), ``scaling_``.
    Features not selected get contribution 0.
    """

    enforces_directions = True

    def __init__(
        self,
        directions=None,
        max_prebins: int = 20,
        min_bin_share="auto",
        min_category_share: float = 0.02,
        unknown_direction: str = "auto",
        min_iv="auto",
        max_corr: float = 0.7,
        sign_check: bool = True,
        C: float = 1.0,
        reference: str = "neutral",
        base_score: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
    ):
        self.directions = directions
        self.max_prebins = max_prebins
        self.min_bin_share = min_bin_share
        self.min_category_share = min_category_share
        self.unknown_direction = unknown_direction
        self.min_iv = min_iv
        self.max_corr = max_corr
        self.sign_check = sign_check
        self.C = C
        self.reference = reference
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo

    def _fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None = None) -> None:
        from sklearn.linear_model import LogisticRegression

        if self.reference not in ("neutral", "best"):
            raise ModelInputError(f"reference must be 'neutral' or 'best', got {self.reference!r}")
        self.scaling_ = PDOScaling(self.base_score, self.base_odds, self.pdo)
        n_events = float(y.sum()) if w is None else float((w * y).sum())
        n_rows = len(y) if w is None else float(w.sum())
        if self.min_bin_share == "auto":  # about 100 defaults per bin, between 2% and 5% of rows
            self.min_bin_share_ = float(np.clip(100.0 / max(n_events, 1.0), 0.02, 0.05))
        elif isinstance(self.min_bin_share, (int, float)) and 0 < self.min_bin_share < 0.5:
            self.min_bin_share_ = float(self.min_bin_share)
        else:
            raise ModelInputError(f"min_bin_share must be 'auto' or a share in (0, 0.5), got {self.min_bin_share!r}")
        self.binner_ = MonotonicBinner(
            directions=self.directions_,
            max_prebins=self.max_prebins,
            min_bin_share=self.min_bin_share_,
            min_category_share=self.min_category_share,
            unknown_direction=self.unknown_direction,
        ).fit(X, y, sample_weight=w)
        W = self.binner_.transform(X)
        self.iv_ = self.binner_.iv()
        self.min_iv_ = self._iv_thresholds(n_rows, n_events)
        self.dropped_: dict[str, str] = {}
        candidates = [c for c in self.iv_.index if self.iv_[c] >= self.min_iv_[c]]
        for c in self.iv_.index:
            if c not in candidates:
                self.dropped_[c] = f"IV {self.iv_[c]:.4f} < min_iv {self.min_iv_[c]:.4f}"
        if not candidates:
            best = self.iv_.index[0]
            log.warning("scorecard: no feature reaches min_iv (%s); keeping the best one, %r", self.min_iv, best)
            candidates = [best]
            self.dropped_.pop(best, None)
        kept: list[str] = []
        corr = _corr(W[candidates], w) if len(candidates) > 1 else None
        for c in candidates:
            clash = [k for k in kept if abs(corr.loc[c, k]) > self.max_corr] if corr is not None else []
            if clash:
                self.dropped_[c] = f"|corr| with {clash[0]!r} = {abs(corr.loc[c, clash[0]]):.2f} > {self.max_corr}"
            else:
                kept.append(c)
        while True:
            lr = LogisticRegression(C=self.C, max_iter=2000)
            lr.fit(W[kept].to_numpy(), y, sample_weight=w)
            coef = lr.coef_[0]
            if not self.sign_check or coef.min() > 0 or len(kept) == 1:
                break
            worst = kept[int(np.argmin(coef))]
            self.dropped_[worst] = f"coefficient {coef.min():.4f} <= 0 contradicts its WoE direction"
            kept.remove(worst)
        if self.sign_check and coef.min() <= 0:
            # a single feature with a non-positive coefficient: its WoE carries no usable signal
            log.warning("scorecard: the only remaining feature %r has coefficient %.4g <= 0", kept[0], coef[0])
        self._set_model(kept, coef, float(lr.intercept_[0]))

    def _iv_thresholds(self, n: float, n_events: float) -> pd.Series:
        """Minimum IV per feature. A number applies to all. ``"auto"``: the conventional 0.02, lowered
        on large samples to the IV a feature with no signal would exceed only 0.1% of the time.

        For small effects ``n * p * (1 - p) * IV`` is close to the chi-square statistic of the
        feature's bins x default table (k - 1 degrees of freedom for k non-empty bins), so the
        threshold is ``min(0.02, chi2.ppf(0.999, k - 1) / (n p (1 - p)))``. On German credit
        (700 rows) this stays 0.02; on 50,000 rows at a 12% default rate it is about 0.003, so the
        many weak but real signals a sci-tech data hub offers are not thrown away.
        """
        if self.min_iv != "auto":
            if not isinstance(self.min_iv, (int, float)) or self.min_iv < 0:
                raise ModelInputError(f"min_iv must be 'auto' or a number >= 0, got {self.min_iv!r}")
            return pd.Series(float(self.min_iv), index=self.iv_.index)
        from scipy.stats import chi2

        p = n_events / max(n, 1)
        scale = max(n * p * (1 - p), 1e-12)
        out = {}
        for c, b in self.binner_.bins_.items():
            k = int((b.count > 0).sum())
            out[c] = min(0.02, float(chi2.ppf(0.999, max(k - 1, 1))) / scale)
        return pd.Series(out)

    def _set_model(self, kept: list[str], coef, intercept: float) -> None:
        """Fitted state shared by ``fit`` and ``from_parts``: coefficients, reference, base points."""
        self.selected_ = list(kept)
        self.coef_ = pd.Series(np.asarray(coef, dtype="float64"), index=self.selected_, name="coef")
        self.intercept_ = float(intercept)
        self._sel_idx = np.asarray([self.columns_.index(c) for c in self.selected_], dtype="int64")
        if self.reference == "neutral":
            self.reference_woe_ = pd.Series(0.0, index=self.selected_)
        else:  # best bin = lowest WoE among bins seen in training
            self.reference_woe_ = pd.Series(
                {c: float(self.binner_.bins_[c].woe[self.binner_.bins_[c].count > 0].min()) for c in self.selected_}
            )
        # log-odds contribution by bin index, per selected feature: one gather per column when scoring
        self.contribution_lookup_ = {
            c: self.coef_[c] * (self.binner_.bins_[c].woe_lookup() - self.reference_woe_[c]) for c in self.selected_
        }
        self.base_value_ = self.intercept_ + float((self.coef_ * self.reference_woe_).sum())
        self.base_points_ = float(self.scaling_.offset - self.scaling_.factor * self.base_value_)

    @classmethod
    def from_parts(cls, bins: dict, coef, intercept: float, iv=None, dropped=None, directions=None, **params):
        """A fitted Scorecard from bins and coefficients estimated elsewhere (e.g. federated training).

        ``bins``: feature -> :class:`riskmodel.binning.VariableBinning` (the model's features, in
        order); ``coef``: one coefficient per feature (on WoE); ``intercept``; optional ``iv``
        (Series) and ``dropped`` (feature -> reason) for the record; ``params``: Scorecard parameters
        (PDO scaling, ``reference``). The result scores, explains and packages like a fitted one.
        """
        sc = cls(directions=directions, **params)
        names = [str(c) for c in bins]
        coef = np.asarray(list(coef.values()) if isinstance(coef, dict) else coef, dtype="float64")
        if len(coef) != len(names) or not names:
            raise ModelInputError(f"from_parts needs one coefficient per binned feature: {len(names)} bins, {len(coef)} coefficients")
        sc.columns_ = names
        sc.kinds_ = {c: bins[c].kind for c in names}
        sc.feature_names_in_ = np.asarray(names, dtype=object)
        sc.n_features_in_ = len(names)
        sc.classes_ = np.array([0, 1])
        sc.directions_ = _check_directions(directions)
        sc.scaling_ = PDOScaling(sc.base_score, sc.base_odds, sc.pdo)
        binner = MonotonicBinner(
            directions=sc.directions_, max_prebins=sc.max_prebins,
            min_category_share=sc.min_category_share, unknown_direction=sc.unknown_direction,
        )
        binner.bins_ = {c: bins[c] for c in names}
        binner.feature_names_in_ = np.asarray(names, dtype=object)
        sc.binner_ = binner
        sc.iv_ = iv if iv is not None else binner.iv()
        sc.dropped_ = dict(dropped or {})
        sc._set_model(names, coef, intercept)
        return sc

    def _contrib(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(X), len(self.columns_)), order="F")  # column writes stay contiguous
        for j, c in zip(self._sel_idx, self.selected_):
            np.take(self.contribution_lookup_[c], self.binner_.bins_[c].bin_index(X[c]), out=out[:, j])
        return out

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        z = np.full(len(X), self.base_value_)
        for c in self.selected_:  # accumulate: no rows x features matrix for a bare PD
            z += self.contribution_lookup_[c][self.binner_.bins_[c].bin_index(X[c])]
        return z

    def points(self, X) -> pd.DataFrame:
        """Points per selected feature plus ``base_points`` and ``score`` (higher = safer)."""
        contrib = self.contributions(X)[self.selected_]
        pts = -self.scaling_.factor * contrib
        pts.insert(0, "base_points", self.base_points_)
        pts["score"] = pts.sum(axis=1)
        return pts

    def table(self) -> pd.DataFrame:
        """Scorecard table: variable, bin, count, count_share, event, event_rate, woe, iv, coef, points.

        One block per selected feature (in model order), preceded by a ``(base)`` row holding the base
        points. A missing bin with no training rows has WoE 0 (portfolio average).
        """
        check_is_fitted(self, "selected_")
        blocks = []
        for c in self.selected_:
            t = self.binner_.bins_[c].table()
            t["coef"] = self.coef_[c]
            t["points"] = -self.scaling_.factor * self.coef_[c] * (t["woe"] - self.reference_woe_[c])
            blocks.append(t)
        base = pd.DataFrame([{"variable": "(base)", "bin": "", "points": self.base_points_}])
        return pd.concat([base, *blocks], ignore_index=True)


# ==== LightGBM models ====================================================================================
#: LightGBM's ``kZeroThreshold`` (the float ``1e-35f`` as a double). When it predicts, LightGBM reads
#: an input with ``|x| <= LGB_ZERO_THRESHOLD`` as exactly 0, and its bin mappers put split
#: thresholds at ``-LGB_ZERO_THRESHOLD`` and ``+LGB_ZERO_THRESHOLD`` around the zero bin of any
#: feature with values on both sides of zero.
LGB_ZERO_THRESHOLD = float(np.float32(1e-35))
CV_BELOW_ROWS = 10_000  # early_stopping="auto": rounds by k-fold CV below this many rows, by one held-out share from it
CV_FOLDS = 5
DEFAULTS_PER_LEAF = 40  # num_leaves="auto": at most one leaf per this many defaults in the training data
DEFAULTS_PER_MIN_LEAF = 5  # min_child_samples="auto": a leaf holds at least the rows expected to carry this many defaults
MIN_LEAF_ROWS = 20


def _interval_probes(t: np.ndarray) -> np.ndarray:
    """One point strictly inside each interval ``(-inf, t0], (t0, t1], ..., (t_last, inf)``.

    Interior points, not the thresholds themselves: LightGBM reads a probe at ``-1e-35`` (a threshold
    next to the zero bin) as 0, which lies in the next interval, so the tabulated value of the whole
    interval below zero would be the value at zero. An interval whose midpoint falls within
    ``LGB_ZERO_THRESHOLD`` of 0 is the zero bin itself, probed at 0.
    """
    if not len(t):
        return np.zeros(1)
    pad = np.maximum(1.0, np.abs(t[[0, -1]]))
    mid = t[:-1] + (t[1:] - t[:-1]) / 2.0
    mid = np.where(np.abs(mid) <= LGB_ZERO_THRESHOLD, 0.0, mid)
    mid = np.where(mid > t[:-1], mid, t[1:])  # adjacent doubles: the upper end is inside
    return np.concatenate([[t[0] - pad[0]], mid, [t[-1] + pad[1]]])


class _LGBMBase(_CreditEstimator):
    """Shared LightGBM plumbing: matrix building (categories -> codes), training, and the complexity
    chosen from the data, so a small book with few defaults gets a small model.

    * Rounds (``early_stopping="auto"``): below ``CV_BELOW_ROWS`` (10,000) rows, stratified
      ``CV_FOLDS``-fold cross-validation picks the round after which the mean held-out log loss
      stopped improving for ``n_iter_no_change`` rounds, and the model is refitted on every row with
      that many rounds; from 10,000 rows one stratified ``validation_fraction`` is held out and the
      best iteration kept (not refitted). ``"cv"`` always cross-validates, ``True`` always holds out,
      ``False`` fits ``n_estimators`` rounds.
    * Leaves (``num_leaves="auto"``): one per ``DEFAULTS_PER_LEAF`` (40) defaults, between 2 and
      ``max_leaves`` (15 for ``gbm_monotone``, 8 for ``gbm_additive``).
    * Leaf size (``min_child_samples="auto"``): the rows expected to hold ``DEFAULTS_PER_MIN_LEAF``
      (5) defaults at the training default rate, at least ``MIN_LEAF_ROWS`` (20) and at most a
      quarter of the rows. (German credit, 30% bad: 20 rows; a 3% book: 167 rows.)
    * Categories: every split on a text column is one category against the rest (LightGBM's
      one-vs-rest, ``max_cat_to_onehot`` above the column's category count). LightGBM's default
      many-versus-many split sorts the categories by their own default rate and cuts the sorted
      list, which on a few hundred defaults fits noise: on credit_data thinned to 6% bad with a
      profile column of 384 levels it cost gbm_additive 0.03 AUC (benchmarks/bench_small_books.py).

    With sample weights the defaults and the default rate are weighted. The values used are in
    ``num_leaves_``, ``min_child_samples_`` and ``n_iter_`` after fitting. String/category columns:
    categories are stored at fit; unseen categories and missing values become NaN (LightGBM's
    missing branch).
    """

    enforces_directions = True
    _additive = False
    max_leaves = 15

    def __init__(
        self,
        directions=None,
        n_estimators: int = 400,
        learning_rate: float = 0.05,
        num_leaves="auto",
        max_depth: int = -1,
        min_child_samples="auto",
        reg_lambda: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        early_stopping="auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 50,
        random_state: int = 42,
    ):
        self.directions = directions
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        M = np.empty((len(X), len(self.columns_)), dtype="float64", order="F")  # LightGBM reads col-major
        for j, c in enumerate(self.columns_):
            if self.kinds_[c] == "numeric":
                M[:, j] = X[c].to_numpy(dtype="float64")
            else:
                codes = category_codes(X[c], self.categories_[c])
                M[:, j] = np.where(codes < 0, np.nan, codes)
        return M

    def _lgb_params(self) -> dict:
        mono = [
            0 if self.kinds_[c] == "categorical" else self.directions_.get(c, 0) for c in self.columns_
        ]
        params = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves_,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples_,
            "lambda_l2": self.reg_lambda,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree,
            "monotone_constraints": mono,
            "num_threads": config.threads(),
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.random_state,
            "verbosity": -1,
            "min_data_per_group": 20,
            "cat_smooth": 10.0,
            "max_cat_to_onehot": max([4, *(len(v) + 1 for v in self.categories_.values())]),
        }
        if self._additive:
            params["interaction_constraints"] = [[j] for j in range(len(self.columns_))]
        return params

    def _fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None = None) -> None:
        import lightgbm as lgb

        if self.early_stopping not in ("auto", "cv", True, False):
            raise ModelInputError(f"early_stopping must be 'auto', 'cv', True or False, got {self.early_stopping!r}")
        self.categories_ = {
            c: sorted(X[c].dropna().astype(str).unique().tolist()) for c in self.columns_ if self.kinds_[c] == "categorical"
        }
        self.num_leaves_, self.min_child_samples_ = self._complexity(y, w)
        M = self._matrix(X)
        names = [f"f{j}" for j in range(M.shape[1])]  # LightGBM-safe names; mapped back by position
        cat_idx = [j for j, c in enumerate(self.columns_) if self.kinds_[c] == "categorical"]
        params = self._lgb_params()
        cv = self.early_stopping == "cv" or (self.early_stopping == "auto" and len(y) < CV_BELOW_ROWS)
        stop = self.early_stopping is True or (self.early_stopping == "auto" and len(y) >= CV_BELOW_ROWS)
        if cv:
            rounds = self._cv_rounds(params, M, y, w, names, cat_idx)
            dtr = lgb.Dataset(M, y, weight=w, feature_name=names, categorical_feature=cat_idx, free_raw_data=True)
            booster = lgb.train(params, dtr, num_boost_round=rounds)
        elif stop:
            from sklearn.model_selection import train_test_split

            tr, va = train_test_split(
                np.arange(len(y)), test_size=self.validation_fraction, random_state=self.random_state, stratify=y
            )
            dtr = lgb.Dataset(M[tr], y[tr], weight=None if w is None else w[tr], feature_name=names, categorical_feature=cat_idx, free_raw_data=True)
            dva = lgb.Dataset(M[va], y[va], weight=None if w is None else w[va], reference=dtr)
            booster = lgb.train(
                params, dtr, num_boost_round=self.n_estimators, valid_sets=[dva],
                callbacks=[lgb.early_stopping(self.n_iter_no_change, verbose=False)],
            )
            best = booster.best_iteration or self.n_estimators
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        else:
            dtr = lgb.Dataset(M, y, weight=w, feature_name=names, categorical_feature=cat_idx, free_raw_data=True)
            booster = lgb.train(params, dtr, num_boost_round=self.n_estimators)
        self.booster_ = booster
        self.n_iter_ = booster.num_trees()
        self.base_value_ = float(booster.predict(M[:1], pred_contrib=True)[0, -1])
        self._post_fit(X, M)

    def _complexity(self, y: np.ndarray, w: np.ndarray | None) -> tuple[int, int]:
        """``(num_leaves, min_child_samples)``: the given values, or "auto" from the (weighted)
        number of defaults and default rate (class docstring)."""
        n = float(len(y)) if w is None else float(w.sum())
        defaults = float(y.sum()) if w is None else float((w * y).sum())
        leaves, leaf_rows = self.num_leaves, self.min_child_samples
        if leaves == "auto":
            leaves = int(np.clip(defaults // DEFAULTS_PER_LEAF, 2, self.max_leaves))
        elif isinstance(leaves, bool) or not isinstance(leaves, (int, np.integer)) or leaves < 2:
            raise ModelInputError(f"num_leaves must be 'auto' or a whole number >= 2, got {leaves!r}")
        if leaf_rows == "auto":
            rate = max(defaults / max(n, 1e-12), 1e-12)
            leaf_rows = int(min(max(MIN_LEAF_ROWS, np.ceil(DEFAULTS_PER_MIN_LEAF / rate)), max(MIN_LEAF_ROWS, len(y) // 4)))
        elif isinstance(leaf_rows, bool) or not isinstance(leaf_rows, (int, np.integer)) or leaf_rows < 1:
            raise ModelInputError(f"min_child_samples must be 'auto' or a whole number >= 1, got {leaf_rows!r}")
        return int(leaves), int(leaf_rows)

    def _cv_rounds(self, params: dict, M: np.ndarray, y: np.ndarray, w: np.ndarray | None, names: list[str], cat_idx: list[int]) -> int:
        """Boosting rounds chosen by stratified ``CV_FOLDS``-fold cross-validation: the round after
        which the mean held-out log loss has not improved for ``n_iter_no_change`` rounds."""
        import lightgbm as lgb
        from sklearn.model_selection import StratifiedKFold

        folds = min(CV_FOLDS, int(np.bincount(y, minlength=2).min()))
        if folds < 2:
            return self.n_estimators
        data = lgb.Dataset(M, y, weight=w, feature_name=names, categorical_feature=cat_idx, free_raw_data=False)
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state).split(M, y)
        res = lgb.cv(params, data, num_boost_round=self.n_estimators, folds=list(split),
                     callbacks=[lgb.early_stopping(self.n_iter_no_change, verbose=False)])
        self.cv_logloss_ = float(res["valid binary_logloss-mean"][-1])
        return len(res["valid binary_logloss-mean"])

    def _post_fit(self, X: pd.DataFrame, M: np.ndarray) -> None:
        pass

    @property
    def feature_importances_(self) -> pd.Series:
        """Total gain per feature."""
        check_is_fitted(self, "booster_")
        return pd.Series(self.booster_.feature_importance("gain"), index=self.columns_, name="gain")


class GBMMonotone(_LGBMBase):
    """LightGBM with monotone constraints from ``directions`` (+1: PD may only rise with the value).

    Contributions are TreeSHAP values (``pred_contrib=True``): the reference is the expectation of
    the trees over the training data (the average applicant) and ``base_value_`` is that
    expectation. Exact, but about 0.6 ms per row at default depth: use ``gbm_additive`` for reason
    codes on large batches. Contributions are computed in chunks of ``chunk_rows`` rows to bound memory.
    """

    chunk_rows = 100_000

    def _contrib(self, X: pd.DataFrame) -> np.ndarray:
        M = self._matrix(X)
        out = np.empty((len(M), M.shape[1]))
        for s in range(0, len(M), self.chunk_rows):
            out[s : s + self.chunk_rows] = self.booster_.predict(
                M[s : s + self.chunk_rows], pred_contrib=True, num_threads=config.threads()
            )[:, :-1]
        return out

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict(self._matrix(X), raw_score=True, num_threads=config.threads())


class GBMAdditive(_LGBMBase):
    """Additive LightGBM: every tree splits on a single feature (``interaction_constraints``),
    monotone in each feature's direction. The model is ``base + sum_j f_j(x_j)``.

    After fitting, each ``f_j`` is tabulated as a step function: the sorted split thresholds of all
    trees on feature j, the value on each interval (``x <= t`` goes left, as in LightGBM) and the
    value for missing (and, for categorical features, one value per category code). The values are
    TreeSHAP values at one point per interval, so the reference is the training expectation of
    ``f_j`` (the average applicant) and ``base_value_`` the sum of those expectations; for an
    additive model these SHAP values are exact and do not depend on the other features.
    ``contributions`` and ``predict_proba`` then cost one ``np.searchsorted`` per column; the
    booster (``booster_``) gives the same log-odds (checked in the tests).

    Defaults differ from ``gbm_monotone``: more, smaller trees (at most 8 leaves, up to 800 rounds)
    since each tree learns one feature's shape.
    """

    _additive = True
    max_leaves = 8

    def __init__(
        self,
        directions=None,
        n_estimators: int = 800,
        learning_rate: float = 0.05,
        num_leaves="auto",
        max_depth: int = -1,
        min_child_samples="auto",
        reg_lambda: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        early_stopping="auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 50,
        random_state: int = 42,
    ):
        super().__init__(
            directions=directions, n_estimators=n_estimators, learning_rate=learning_rate,
            num_leaves=num_leaves, max_depth=max_depth, min_child_samples=min_child_samples,
            reg_lambda=reg_lambda, subsample=subsample, colsample_bytree=colsample_bytree,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, random_state=random_state,
        )

    def _post_fit(self, X: pd.DataFrame, M: np.ndarray) -> None:
        p = M.shape[1]
        trees = self.booster_.trees_to_dataframe()
        splits = trees[trees["split_feature"].notna()]
        self.shape_thresholds_: list[np.ndarray] = []
        probes = []
        for j in range(p):
            name = f"f{j}"
            if self.kinds_[self.columns_[j]] == "categorical":
                pts = np.arange(len(self.categories_[self.columns_[j]]), dtype="float64")
                self.shape_thresholds_.append(np.empty(0))
            else:
                t = splits.loc[splits["split_feature"] == name, "threshold"].to_numpy(dtype="float64")
                t = np.unique(t)
                self.shape_thresholds_.append(t)
                pts = _interval_probes(t)
            probes.append(np.append(pts, np.nan))
        P = np.full((sum(len(v) for v in probes), p), np.nan)
        start = 0
        for j, v in enumerate(probes):
            P[start : start + len(v), j] = v
            start += len(v)
        C = self.booster_.predict(P, pred_contrib=True, num_threads=config.threads())
        self.shape_values_: list[np.ndarray] = []
        self.shape_missing_ = np.empty(p)
        start = 0
        for j, v in enumerate(probes):
            vals = C[start : start + len(v), j]
            self.shape_values_.append(vals[:-1].copy())
            self.shape_missing_[j] = vals[-1]
            start += len(v)
        self.base_value_ = float(C[0, -1])
        # lookup tables: numeric values go through searchsorted(thresholds + [inf], side="left"),
        # which sends NaN one past the last interval; categorical code -1 (missing/unseen) picks
        # the last entry. Both land on the missing value.
        self._lookup_t = [np.append(t, np.inf) for t in self.shape_thresholds_]
        self._lookup_v = [np.append(v, m) for v, m in zip(self.shape_values_, self.shape_missing_)]
        # sanity: the tabulated model reproduces the booster on (up to) 2,000 training rows
        n = min(len(M), 2000)
        raw = self.booster_.predict(M[:n], raw_score=True, num_threads=config.threads())
        tab = self.base_value_ + self._contrib(X.iloc[:n]).sum(axis=1)
        err = float(np.max(np.abs(raw - tab))) if n else 0.0
        if err > 1e-6:  # pragma: no cover - a tabulation bug (see tests/code/test_models_contract.py)
            raise RuntimeError(f"gbm_additive: tabulated shapes differ from the booster by {err:.3g}")

    def _lookup_index(self, X: pd.DataFrame, j: int, c: str) -> np.ndarray:
        if self.kinds_[c] == "categorical":
            return category_codes(X[c], self.categories_[c])
        x = X[c].to_numpy(dtype="float64", na_value=np.nan)
        x = np.where(np.abs(x) <= LGB_ZERO_THRESHOLD, 0.0, x)  # LightGBM reads these as 0 (NaN stays NaN)
        return np.searchsorted(self._lookup_t[j], x, side="left")

    def _contrib(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(X), len(self.columns_)), order="F")  # column writes stay contiguous
        for j, c in enumerate(self.columns_):
            np.take(self._lookup_v[j], self._lookup_index(X, j, c), out=out[:, j])
        return out

    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        z = np.full(len(X), self.base_value_)
        for j, c in enumerate(self.columns_):  # accumulate: no rows x features matrix for a bare PD
            z += self._lookup_v[j][self._lookup_index(X, j, c)]
        return z

    def shape(self, feature: str) -> pd.DataFrame:
        """The tabulated step function of one feature: interval (or category) and contribution."""
        check_is_fitted(self, "shape_values_")
        j = self.columns_.index(feature)
        vals = self.shape_values_[j]
        if self.kinds_[feature] == "categorical":
            keys = list(self.categories_[feature])
        else:
            t = self.shape_thresholds_[j]
            edges = [-np.inf, *t.tolist(), np.inf]
            keys = [f"({lo:.6g}, {hi:.6g}]" for lo, hi in zip(edges[:-1], edges[1:])][: len(vals)]
        return pd.DataFrame({"bin": [*keys, "Missing"], "contribution": [*vals.tolist(), self.shape_missing_[j]]})


_REGISTRY = {
    "financial_baseline": FinancialBaseline,
    "scorecard": Scorecard,
    "gbm_monotone": GBMMonotone,
    "gbm_additive": GBMAdditive,
}


def make_model(name: str, directions=None, **params):
    """Build an unfitted estimator by name: financial_baseline, scorecard, gbm_monotone, gbm_additive."""
    if name not in _REGISTRY:
        raise ModelInputError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    cls = _REGISTRY[name]
    try:
        return cls(directions=directions, **params)
    except TypeError:
        import inspect

        valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "directions")]
        bad = [p for p in params if p not in valid]
        raise ModelInputError(f"model {name!r} has no parameter(s) {bad}; valid parameters: {valid}") from None
