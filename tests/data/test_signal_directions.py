"""Directional sanity on generated data: every feature with a declared direction moves the risk that way,
and no catalog signal is constant (a constant signal is one the generator never exercises).

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

from features.build import build_features
from features.catalog import catalog, feature_directions
from features.tables import load_tables
from synthetic import GeneratorParams, generate

# Generating and building the module dataset takes several seconds.
pytestmark = pytest.mark.slow

N_FIRMS = 5000
SEED = 3


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirs") / "ds"
    # every application granted: directions are a property of the world, and the default policy
    # rejects most firms with an overdue bill, so among granted loans the bill signals lose their order
    # (the selection bias riskmodel train measures with its through-the-door metrics)
    generate(GeneratorParams(firms=N_FIRMS, seed=SEED, approval_policy="none"), out)
    tables, _ = load_tables(out)
    X = build_features(tables)
    truth = pd.read_parquet(out / "truth" / "truth.parquet", columns=["application_id", "true_pd"])
    truth["application_id"] = truth["application_id"].astype("string")
    outcomes = tables["outcomes"][["application_id", "default_12m"]]
    M = X.merge(truth, on="application_id", how="left").merge(outcomes, on="application_id", how="left")
    assert M["true_pd"].notna().all()
    M.attrs["signals"] = [c for c in X.columns if c in set(catalog()["name"])]
    return M


def _declared() -> dict[str, int]:
    return {k: v for k, v in feature_directions().items() if v != 0}


def test_every_declared_direction_matches_the_true_pd(matrix):
    wrong = []
    checked = 0
    for name, direction in _declared().items():
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


def test_no_catalog_signal_is_constant(matrix):
    """A model drops a constant column, so a catalog signal that never varies on generated data is one the
    generator does not exercise (energy_zero_months_12m was, before the generator wrote zero-kWh months)."""
    signals = matrix.attrs["signals"]
    assert len(signals) == len(catalog()) >= 40
    flat = {}
    for name in signals:
        v = matrix[name].dropna()
        top = v.value_counts(normalize=True).iloc[0] if len(v) else 1.0
        if v.nunique() <= 1 or top > 0.995:
            flat[name] = f"{v.nunique()} distinct values, the commonest in {top:.1%} of {len(v):,} known rows"
    assert not flat, f"signals (nearly) constant on {N_FIRMS:,} generated firms: {flat}"


def test_firms_with_zero_kwh_months_are_riskier_but_not_all_defaulters(matrix):
    """Zero-kWh months come from shutdowns (more likely as operating health falls) and from moves, meter
    changes and festival closures (unrelated to risk): a risk signal, not a label."""
    z = matrix["energy_zero_months_12m"]
    known = matrix[z.notna()]
    has_zero = known["energy_zero_months_12m"] > 0
    assert 0.02 < has_zero.mean() < 0.15, has_zero.mean()
    assert known.loc[has_zero, "true_pd"].mean() > 1.5 * known.loc[~has_zero, "true_pd"].mean()
    lab = known[known["default_12m"].notna()]
    rate = lab.groupby(lab["energy_zero_months_12m"] > 0)["default_12m"].mean()
    assert rate[True] > 1.5 * rate[False], rate.to_dict()
    assert rate[True] < 0.25, rate.to_dict()  # most firms with a zero month do not default
    auc = roc_auc_score(lab["default_12m"].astype(int), lab["energy_zero_months_12m"])
    assert 0.51 < auc < 0.65, auc  # informative, far from a leak


def test_directions_are_the_catalog_directions():
    cat = catalog()
    assert feature_directions() == dict(zip(cat["name"], cat["direction"]))
    assert set(cat["direction"]) <= {-1, 0, 1}


def test_declared_lower_bounds_hold_on_generated_data(matrix):
    """Every feature declared non-negative is (the build also refuses a value below a declared
    bound), and the features declared signed do go below 0: no bound is missing."""
    cat = catalog()
    for r in cat.loc[cat["lower_bound"].notna()].itertuples():
        v = matrix[r.name].dropna()
        assert len(v) >= 300 and v.min() >= r.lower_bound, f"{r.name}: min {v.min()} below its declared bound {r.lower_bound}"
    signed = cat.loc[cat["lower_bound"].isna(), "name"].tolist()
    assert len(signed) >= 10
    # the generator never sells below cost; a real firm can (revenue minus cost of sales is signed)
    never_negative = [n for n in signed if not (matrix[n] < 0).any() and n != "gross_margin"]
    assert not never_negative, f"declared signed but never negative on a generated hub: {never_negative}"
