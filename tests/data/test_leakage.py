"""Point-in-time correctness of the feature layer on generated data.

* Truncation: cut every table to rows known before a date D; the features of every application dated
  on or before D are identical to those built from the full data.
* Poisoning: give every row known on or after D absurd values; the features of applications dated on
  or before D do not change. Per firm as well: poison what each firm's first application could not
  know (every feature except industry norms, which read other firms' rows).
* Batch independence: an application's features do not depend on the other applications built with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.catalog import catalog
from features.tables import SCHEMAS, load_tables
from synthetic import GeneratorParams, generate

# Generating and building the module dataset takes several seconds.
pytestmark = pytest.mark.slow

N_FIRMS = 2000
SEED = 5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("leak") / "ds"
    generate(GeneratorParams(firms=N_FIRMS, seed=SEED), out)
    tables, _ = load_tables(out)
    full = build_features(tables)
    return tables, full


def _feature_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in catalog()["name"] if c in X.columns]


def _assert_identical(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.set_index("application_id").sort_index()
    b = b.set_index("application_id").sort_index()
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("cut", ["2023-03-01", "2024-06-17"])
def test_truncating_tables_at_d_changes_no_feature_of_applications_up_to_d(data, cut):
    tables, full = data
    D = pd.Timestamp(cut)
    apps = tables["applications"]
    upto = apps[apps["application_date"] <= D].reset_index(drop=True)
    assert len(upto) > 200, "the cut leaves too few applications for the test to mean anything"
    truncated = {k: v[v["available_date"] < D].reset_index(drop=True) for k, v in tables.items() if k != "applications"}
    got = build_features(truncated, applications=upto)
    want = full[full["application_date"] <= D].reset_index(drop=True)
    # the comparison must be able to fail: most features are populated for these applications
    assert want[_feature_columns(want)].notna().mean().mean() > 0.6
    _assert_identical(got, want)


def _poison(tables: dict, cut_of_firm: pd.Series) -> dict:
    """Rows known on or after their firm's cut day get absurd values in every value column."""
    out = {}
    for name, df in tables.items():
        if name in ("applications", "outcomes"):
            out[name] = df
            continue
        df = df.copy()
        cut = df["firm_id"].map(cut_of_firm).to_numpy(dtype="datetime64[ns]")
        future = ~(df["available_date"].to_numpy() < cut)  # no application (NaT cut): poison everything
        schema = SCHEMAS[name]
        for col in schema.columns:
            if col.name in ("firm_id", "available_date") or col.name in schema.key or col.name == schema.event:
                continue
            if col.dtype in ("int", "float"):
                values = df[col.name].to_numpy(dtype="float64", copy=True)
                values[future] = col.max if col.max is not None else 1e9
                df[col.name] = values.astype(df[col.name].dtype) if col.dtype == "int" else values
            elif col.dtype == "category":
                flipped = df[col.name].copy()
                flipped[future] = col.categories[-1]
                df[col.name] = flipped
            elif col.dtype == "date":
                values = df[col.name].copy()
                values[future] = values[future] - pd.Timedelta(days=3650)
                df[col.name] = values
        out[name] = df
    return out


@pytest.mark.parametrize("cut", ["2023-03-01", "2024-06-17"])
def test_poisoning_rows_known_from_d_changes_no_feature_of_applications_up_to_d(data, cut):
    tables, full = data
    D = pd.Timestamp(cut)
    apps = tables["applications"]
    upto = apps[apps["application_date"] <= D].reset_index(drop=True)
    firms = tables["firms"]["firm_id"]
    poisoned = _poison(tables, pd.Series(D, index=firms.to_numpy()))
    got = build_features(poisoned, applications=upto)
    _assert_identical(got, full[full["application_date"] <= D].reset_index(drop=True))


# Features built from other firms' rows (industry norms) may legitimately read another firm's row that
# is known before this application but after that firm's own first application.
PEER_FEATURES = ["energy_yoy_vs_industry"]


def test_poisoning_rows_after_each_firms_first_application_changes_nothing(data):
    tables, full = data
    apps = tables["applications"]
    first = apps.sort_values(["application_date", "application_id"]).drop_duplicates("firm_id")
    cut_of_firm = first.set_index("firm_id")["application_date"]
    poisoned = _poison(tables, cut_of_firm)
    n_poisoned = sum(int((poisoned[k] != tables[k]).any(axis=1).sum()) for k in ("electricity", "financials", "patents"))
    assert n_poisoned > 1000
    got = build_features(poisoned, applications=first.reset_index(drop=True)).drop(columns=PEER_FEATURES)
    want = full[full["application_id"].isin(first["application_id"])].reset_index(drop=True).drop(columns=PEER_FEATURES)
    _assert_identical(got, want)


def test_poisoning_is_detected_when_rows_are_known(data):
    """Control: the same poison applied to rows known before the applications does change features."""
    tables, full = data
    apps = tables["applications"]
    first = apps.sort_values(["application_date", "application_id"]).drop_duplicates("firm_id")
    cut_of_firm = first.set_index("firm_id")["application_date"] - pd.Timedelta(days=400)
    got = build_features(_poison(tables, cut_of_firm), applications=first.reset_index(drop=True))
    want = full[full["application_id"].isin(first["application_id"])]
    changed = got.set_index("application_id").sort_index()[_feature_columns(got)].ne(want.set_index("application_id").sort_index()[_feature_columns(want)])
    assert changed.any(axis=1).mean() > 0.5


def test_features_do_not_depend_on_the_batch(data):
    tables, full = data
    apps = tables["applications"]
    rng = np.random.default_rng(0)
    pick = apps.iloc[np.sort(rng.choice(len(apps), size=50, replace=False))].reset_index(drop=True)
    alone = pd.concat([build_features(tables, applications=pick.iloc[[i]]) for i in range(0, 50, 10)], ignore_index=True)
    want = full[full["application_id"].isin(alone["application_id"])].reset_index(drop=True)
    _assert_identical(alone, want)
    shuffled = build_features(tables, applications=pick.iloc[::-1].reset_index(drop=True))
    _assert_identical(shuffled, full[full["application_id"].isin(pick["application_id"])])
