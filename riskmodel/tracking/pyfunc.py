"""The model as MLflow stores it: a small pyfunc around the pickled CreditModel.

The fitted :class:`riskmodel.creditmodel.CreditModel` is pickled as an artifact of
:class:`CreditModelPyfunc`, whose ``predict`` returns ``CreditModel.predict`` plus ``model_name``
and ``model_version`` columns. Requirements are passed explicitly (no slow inference subprocess);
the deployment environment installs the riskmodel package itself.
"""

from __future__ import annotations

import logging
import pickle

import mlflow.pyfunc
import pandas as pd

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "credit_model"  # key of the pickled CreditModel inside the pyfunc
MODEL_NAME_IN_RUN = "model"  # name of the logged pyfunc inside a run
_CORE_DEPS = ("numpy", "pandas", "scikit-learn", "lightgbm", "pyarrow", "mlflow", "cloudpickle")


class CreditModelPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a pickled ``CreditModel``.

    ``predict(feature rows)`` returns ``CreditModel.predict`` (pd, score, grade, reason codes and
    their Chinese/English texts) plus ``model_name`` and ``model_version``. Name and version come
    from ``model_config`` (set at logging time to the registered name and version; a caller may
    override them with ``mlflow.pyfunc.load_model(uri, model_config=...)``).
    """

    def load_context(self, context) -> None:
        with open(context.artifacts[MODEL_ARTIFACT], "rb") as fh:
            self.credit_model = pickle.load(fh)
        cfg = dict(context.model_config or {})
        self.model_name = str(cfg.get("model_name", ""))
        self.model_version = str(cfg.get("model_version", ""))
        requirement_mismatches(cfg.get("requirements", ()))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        out = self.credit_model.predict(model_input)
        # Plain object columns for every text output: categorical and Arrow-backed strings break
        # consumers that convert the frame themselves (Spark's Arrow writer, JSON serving).
        text = {c: out[c].astype(object).where(out[c].notna(), None) for c in out.columns if c not in ("pd", "score")}
        out = out.assign(**text)
        out["model_name"] = self.model_name
        out["model_version"] = self.model_version
        return out


def pip_requirements() -> list[str]:
    """The project package at its version plus the installed versions of the core dependencies."""
    from importlib.metadata import PackageNotFoundError, version

    import riskmodel

    reqs = [f"riskmodel=={riskmodel.__version__}"]
    for dist in _CORE_DEPS:
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:  # pragma: no cover
            reqs.append(dist)
    return reqs


def requirement_mismatches(requirements) -> list[str]:
    """Warn about (and return) the pinned ``name==version`` requirements the installed packages do
    not match. Loading calls this instead of MLflow's own check, which scans every installed
    distribution (the largest part of a model load in a profile of ``riskmodel score``)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for req in requirements:
        name, _, wanted = str(req).partition("==")
        if not wanted:
            continue
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "not installed"
        if have != wanted:
            found.append(f"{name}=={wanted} (installed: {have})")
    if found:
        log.warning("the model was logged with %s; predictions may differ", ", ".join(found))
    return found


def input_example(X: pd.DataFrame, n: int = 2) -> pd.DataFrame:
    """A synthetic input example: the column medians (and upper quartiles) of ``X``, no real row.

    Logging real rows would copy individual firms' data into every model artifact."""
    rows = []
    for q in (0.5, 0.75)[:n]:
        row = {}
        for c in X.columns:
            s = X[c]
            if pd.api.types.is_bool_dtype(s):
                row[c] = bool(s.mode().iloc[0]) if s.notna().any() else False
            elif pd.api.types.is_numeric_dtype(s):
                v = s.quantile(q)
                row[c] = float(v) if pd.notna(v) else 0.0
            else:
                m = s.dropna().astype(str).mode()
                row[c] = str(m.iloc[0]) if len(m) else ""
        rows.append(row)
    ex = pd.DataFrame(rows, columns=list(X.columns))
    for c in X.columns:
        if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c]):
            ex[c] = ex[c].astype("float64")
    return ex
