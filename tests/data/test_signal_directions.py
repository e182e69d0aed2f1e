"""Directional sanity on generated data: every feature with a declared direction moves the risk that way.

The reference is the generator's true PD of each application (truth/truth.parquet, read by tests only):
the rank correlation between a feature and the true PD must have the sign of the declared direction
(+1 raises PD, -1 lowers it). True PD is used rather than the 0/1 outcome because with a few thousand
firms the outcome has only about a hundred defaults; features that order risk strongly are also
checked against the observed defaults. A failure means the signal or its declaration is wrong: fix
one of them, not this test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.build import build_features, catalog, feature_directions
from features.tables import load_tables
from riskmodel.synthetic import GeneratorParams, generate

# Generating and building the module dataset takes several seconds.
pytestmark = pytest.mark.slow

N_FIRMS = 5000
SEED = 3

# Declared features the generator never exercises, with the reason. Each must really be constant (or
# nearly always missing) on the generated data, so the exemption lapses when the generator changes.
NOT_EXERCISED = {
    "energy_zero_months_12m": "the generator produces no zero-kWh month before a default (meters stop only after it)",
}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirs") / "ds"
    generate(GeneratorParams(firms=N_FIRMS, seed=SEED), out)
    tables, _ = load_tables(out)
    X = build_features(tables)
    truth = pd.read_parquet(out / "truth" / "truth.parquet", columns=["application_id", "true_pd"])
    truth["application_id"] = truth["application_id"].astype("string")
    outcomes = tables["outcomes"][["application_id", "default_12m"]]
    M = X.merge(truth, on="application_id", how="left").merge(outcomes, on="application_id", how="left")
    assert M["true_pd"].notna().all()
    return M


def _declared() -> dict[str, int]:
    return {k: v for k, v in feature_directions().items() if v != 0}


def test_every_declared_direction_matches_the_true_pd(matrix):
    wrong = []
    checked = 0
    for name, direction in _declared().items():
        if name in NOT_EXERCISED:
            continue
        v = matrix[name]
        ok = v.notna()
        assert ok.sum() >= 300, f"{name}: only {ok.sum()} non-missing values; too few to check its direction"
        rho = v[ok].rank().corr(matrix.loc[ok, "true_pd"].rank())
        checked += 1
        if not np.sign(rho) == direction:
            wrong.append(f"{name}: declared {direction:+d}, rank correlation with true PD {rho:+.3f} (n={ok.sum()})")
    assert not wrong, "directions contradicted by the generated data:\n" + "\n".join(wrong)
    assert checked >= 40


def test_strong_features_also_order_observed_defaults(matrix):
    lab = matrix[matrix["default_12m"].notna()]
    assert 50 <= lab["default_12m"].sum() <= 0.1 * len(lab)
    wrong = []
    strong = 0
    for name, direction in _declared().items():
        if name in NOT_EXERCISED:
            continue
        v = matrix[name]
        ok = v.notna()
        if abs(v[ok].rank().corr(matrix.loc[ok, "true_pd"].rank())) < 0.2:
            continue
        strong += 1
        sub = lab[lab[name].notna()]
        auc = roc_auc_score(sub["default_12m"].astype(int), sub[name])
        if np.sign(auc - 0.5) != direction:
            wrong.append(f"{name}: declared {direction:+d}, AUC against observed defaults {auc:.3f}")
    assert strong >= 15
    assert not wrong, "\n".join(wrong)


def test_exemptions_are_really_not_exercised(matrix):
    for name in NOT_EXERCISED:
        v = matrix[name].dropna()
        assert v.nunique() <= 1 or len(v) < 300, f"{name} now varies on generated data: remove it from NOT_EXERCISED"


def test_directions_are_the_catalog_directions():
    cat = catalog()
    assert feature_directions() == dict(zip(cat["name"], cat["direction"]))
    assert set(cat["direction"]) <= {-1, 0, 1}
