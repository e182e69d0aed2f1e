"""CreditModel: a fitted estimator packaged for scoring (team contract 5). Plain Python, no MLflow.

A CreditModel holds everything scoring needs and nothing else:
  * ``estimator``: a fitted model from :mod:`riskmodel.models` (anything with ``contributions``,
    ``base_value_`` and ``feature_names_in_``);
  * ``features`` and ``dtypes``: the columns it reads, ``"float64"`` or ``"category"``;
  * ``master_scale`` (:class:`riskmodel.grades.MasterScale`) and ``scaling`` (PDO);
  * ``catalog``: the catalog rows of its features (``MODEL_CATALOG_COLUMNS``: names, reason texts,
    direction, unit, declared lower bound), so reason texts and bounds travel with the model;
  * ``suppress``: features never reported as reasons (non-actionable factors);
  * ``name`` / ``version``: for the record (the tracking layer fills ``version`` when registering).

``predict(X)`` returns, per row of X (index kept): ``pd``, ``score``, ``grade``, ``reason_1..3``,
``reason_1_zh..3_zh``, ``reason_1_en..3_en``. PD, score and reasons all come from one
``contributions`` call: ``pd = sigmoid(base_value_ + sum of contributions)``, so the reasons always
explain exactly the PD that is reported. It pickles with pickle and cloudpickle (the MLflow pyfunc
in ``riskmodel/tracking/pyfunc.py`` stores it as its artifact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.errors import ScoringError, UserError
from riskmodel.grades import MasterScale, PDOScaling
from riskmodel.reasons import reason_codes, reason_columns

#: the catalog columns a CreditModel keeps for its features (of ``features.contract.CATALOG_COLUMNS``):
#: reason texts, directions and declared lower bounds travel with the model
MODEL_CATALOG_COLUMNS: tuple[str, ...] = (
    "name", "name_zh", "name_en", "family", "direction", "unit", "lower_bound", "reason_en", "reason_zh", "actionable",
)


def output_columns(k: int = 3) -> list[str]:
    """Columns of ``CreditModel.predict`` in order."""
    return ["pd", "score", "grade", *reason_columns(k)]


@dataclass
class CreditModel:
    estimator: Any
    features: list[str]
    dtypes: dict[str, str]
    name: str = "model"
    version: str | None = None
    master_scale: MasterScale = field(default_factory=MasterScale)
    scaling: PDOScaling = field(default_factory=PDOScaling)
    catalog: pd.DataFrame | None = None
    suppress: tuple[str, ...] = ()
    n_reasons: int = 3

    @classmethod
    def from_estimator(
        cls,
        estimator,
        catalog: pd.DataFrame | None = None,
        name: str | None = None,
        suppress=None,
        master_scale: MasterScale | None = None,
        scaling: PDOScaling | None = None,
        n_reasons: int = 3,
    ) -> "CreditModel":
        """Package a fitted estimator.

        ``suppress=None`` suppresses the features the catalog marks ``actionable == False``; pass a
        list to choose exactly (``()`` suppresses nothing). ``scaling=None`` takes a scorecard's own
        PDO parameters, else the defaults (600 points at good:bad 50:1, PDO 20).
        """
        if not hasattr(estimator, "columns_") or not hasattr(estimator, "base_value_"):
            raise UserError("CreditModel.from_estimator needs a fitted riskmodel estimator; call fit(X, y) first")
        features = list(estimator.columns_)
        dtypes = {c: ("category" if estimator.kinds_[c] == "categorical" else "float64") for c in features}
        rows = None
        if catalog is not None:
            if "name" not in catalog.columns:
                raise UserError("the catalog needs a 'name' column (one row per feature)")
            keep = [c for c in MODEL_CATALOG_COLUMNS if c in catalog.columns]
            rows = catalog.loc[catalog["name"].isin(features), keep].reset_index(drop=True)
        if suppress is None:
            if rows is not None and "actionable" in rows.columns:
                suppress = tuple(rows.loc[~rows["actionable"].astype(bool), "name"])
            else:
                suppress = ()
        unknown = [s for s in suppress if s not in features]
        if unknown:
            raise UserError(f"suppress lists features the model does not use: {unknown[:10]}; use names from {features[:10]}")
        if scaling is None:
            scaling = getattr(estimator, "scaling_", None) or PDOScaling()
        return cls(
            estimator=estimator,
            features=features,
            dtypes=dtypes,
            name=name or type(estimator).__name__,
            master_scale=master_scale or MasterScale(),
            scaling=scaling,
            catalog=rows,
            suppress=tuple(suppress),
            n_reasons=n_reasons,
        )

    # ---- scoring -------------------------------------------------------------------------------
    @property
    def used_features(self) -> list[str]:
        """The features the score depends on: a scorecard's selected characteristics, every feature
        for the other models. Scoring needs and validates only these."""
        selected = getattr(self.estimator, "selected_", None)
        if selected is None:
            return list(self.features)
        keep = set(selected)
        return [c for c in self.features if c in keep]

    def select(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's columns of X. A feature the model does not use may be absent: it is passed
        to the estimator as missing, which cannot change the score."""
        if not isinstance(X, pd.DataFrame):
            raise ScoringError("CreditModel.predict needs a pandas DataFrame with the model's feature columns")
        used = self.used_features
        missing = [c for c in used if c not in X.columns]
        if missing:
            raise ScoringError(
                f"{len(missing)} feature column(s) missing from the input: {missing[:10]}; "
                f"the model {self.name!r} needs {len(used)} columns (see CreditModel.used_features)"
            )
        absent = [c for c in self.features if c not in X.columns]
        if absent:  # one read-only all-NaN block, no per-column allocation
            nan = np.broadcast_to(np.float64(np.nan), (len(X), len(absent)))
            X = pd.concat([X, pd.DataFrame(nan, columns=absent, index=X.index, copy=False)], axis=1)
        return X[self.features]

    def _logit_and_contrib(self, X: pd.DataFrame, check_input: bool = True) -> tuple[np.ndarray, pd.DataFrame, tuple[str, ...]]:
        """Log-odds, the contributions of every feature, and the features that cannot be reasons
        (suppressed, or not used by the model: a scorecard's unselected features contribute 0)."""
        contrib = self.estimator.contributions(self.select(X), check_input=check_input)
        used = getattr(self.estimator, "selected_", None)
        C = contrib.to_numpy()  # column-major: each feature's contributions are contiguous
        columns = [str(c) for c in contrib.columns]
        idx = range(len(columns)) if used is None else [columns.index(c) for c in used]
        logit = np.full(len(C), float(self.estimator.base_value_))
        for j in idx:  # one contiguous add per used feature; no rows x features temporary
            logit += C[:, j]
        keep = set(columns if used is None else used)  # built once, not per column
        unused = tuple(c for c in columns if c not in keep)
        return logit, contrib, (*self.suppress, *unused)

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:
        """Bare PD (no reasons): the estimator's ``predict_proba`` on the model's columns."""
        return self.estimator.predict_proba(self.select(X))[:, 1]

    def predict_grades(self, X: pd.DataFrame) -> pd.DataFrame:
        """PD, score and grade without reason codes, index of X kept. ``grade`` is an object column
        of labels (None for a NaN PD). Evaluation, monitoring and stress testing need no reasons:
        the bare PD path is much cheaper than the contributions behind :meth:`predict` for tree
        models (TreeSHAP)."""
        p = np.asarray(self.predict_pd(X), dtype="float64")
        return pd.DataFrame({"pd": p, "score": self.scaling.score(p), "grade": self.master_scale.grade(p)}, index=X.index)

    def predict(self, X: pd.DataFrame, check_input: bool = True) -> pd.DataFrame:
        """PD, score, grade and reason codes (see ``output_columns``), index of X kept. ``grade``
        and the reasons are pandas categoricals (``.astype(str)`` gives plain text).

        ``check_input=False``: X has passed :func:`riskmodel.scoring.validate_chunk` (numeric
        features float64, no infinities), so the estimator's own checks are skipped; the result is
        the same.
        """
        logit, contrib, skip = self._logit_and_contrib(X, check_input)
        p = 1.0 / (1.0 + np.exp(-logit))
        grade = pd.Categorical.from_codes(self.master_scale.grade_index(p), categories=list(self.master_scale.labels))
        out = pd.DataFrame({"pd": p, "score": self.scaling.score_from_logit(logit), "grade": grade}, index=X.index)
        reasons = reason_codes(contrib, self.catalog, suppress=skip, k=self.n_reasons)
        reasons.index = X.index
        return pd.concat([out, reasons], axis=1)

    def input_spec(self) -> dict:
        """What scoring validates before calling ``predict``: ``numeric`` and ``categorical`` feature
        columns (of ``used_features``: a value the model ignores never rejects a row), and
        ``lower_bounds`` (feature -> smallest valid value).

        A feature of the data hub has the bound its signal declares (the catalog's ``lower_bound``;
        NaN: a signed quantity, no bound). A feature without a declaration (bring-your-own data, whose
        catalog rows have no ``lower_bound`` column, or a model saved before catalogs carried one)
        gets the bound 0 when every training value was >= 0.
        """
        used = self.used_features
        numeric = [c for c in used if self.dtypes[c] != "category"]
        categorical = [c for c in used if self.dtypes[c] == "category"]
        declared: dict[str, float] = {}
        if self.catalog is not None and "lower_bound" in self.catalog.columns:
            declared = dict(zip(self.catalog["name"], self.catalog["lower_bound"].astype("float64")))
        ranges = getattr(self.estimator, "feature_range_", {}) or {}  # absent on scorecards assembled from parts
        bounds = {}
        for c in numeric:
            if c in declared:
                if not np.isnan(declared[c]):
                    bounds[c] = float(declared[c])
            elif c in ranges and ranges[c][0] >= 0:
                bounds[c] = 0.0
        return {"numeric": numeric, "categorical": categorical, "lower_bounds": bounds}

    def config(self) -> dict:
        """JSON-able description (for logging as run parameters / model metadata)."""
        return {
            "name": self.name,
            "version": self.version,
            "estimator": type(self.estimator).__name__,
            "features": list(self.features),
            "dtypes": dict(self.dtypes),
            "scaling": self.scaling.to_dict(),
            "master_scale": self.master_scale.to_dict(),
            "suppress": list(self.suppress),
            "n_reasons": self.n_reasons,
        }
