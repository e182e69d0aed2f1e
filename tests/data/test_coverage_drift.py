"""Coverage signals do not trend with the application date on a generated hub; the old counts did.

The hub (20,000 firms, seed 11) starts its tables in January 2021 and its applications a year later.
The old signals counted the months (36) or statements and claims (60 months) on record, so every
application saw more history than the one before. Rebuilt here from the same windows
(``MonthlyWindow.months_known``, ``EventWindow.count``), their mean over the firms with a record
rises by half or more from the first year of applications to the last.

The comparison is among applications whose firm has a record of the source in the window: the
share of firms with none is the population's (firms without a meter, feeds connected during the
hub's life, non-filers), which the coverage signals report rather than remove. It compares whole
years, so the season cancels: statements arrive from April to June, and in those months a late
filer counts as missing a year that most firms have filed.

The bound is statistical: the difference of the two means may not exceed Z standard errors (the
two samples' variances over their sizes). The tolerance it replaces (0.05) came from one measurement
on a 1,500-firm hub. On a hub that small it was about one standard error of the bill share, so it
flagged the bill share's drift by luck, and it would flag noise in a noisier share. With Z = 4 an
unchanged mean fails about once in 16,000 comparisons; the hub is large enough that Z standard errors stay
under POWER, so a drift like that of the bill share counted from founding (about 0.045 here,
test_the_bill_share_counted_from_founding_trends) cannot pass unseen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.asof import Applications, EventTable, EventWindow, FirmIndex, MonthlyTable, MonthlyWindow
from features.build import _applications, build_features
from features.tables import load_tables
from synthetic import GeneratorParams, generate

pytestmark = pytest.mark.slow  # generates a 20,000-firm hub (about 5 s) and builds its coverage features

N_FIRMS = 20_000
SEED = 11
SOURCES = {  # new signal, old definition: (window, lookback)
    "electricity": ("coverage_electricity_share_12m", "monthly", 36),
    "social_security": ("coverage_social_security_share_12m", "monthly", 36),
    "invoices": ("coverage_invoices_share_12m", "monthly", 36),
    "bills": ("coverage_bills_share_12m", "monthly", 36),
    "financials": ("coverage_financials_share_24m", "event", 60),
    "rnd_deductions": ("coverage_rnd_deductions_share_24m", "event", 60),
}
Z = 4.0  # standard errors of the difference of means allowed
POWER = 0.03  # Z standard errors must stay below this: the drift the comparison must be able to see


@pytest.fixture(scope="module")
def coverage(tmp_path_factory):
    out = tmp_path_factory.mktemp("drift") / "hub"
    generate(GeneratorParams(firms=N_FIRMS, seed=SEED), out)
    tables, _ = load_tables(out)
    X = build_features(tables, features=[v[0] for v in SOURCES.values()] + ["firm_age_years"])
    frame = _applications(tables, None, None)
    index = FirmIndex(pd.concat([tables["firms"]["firm_id"].astype("string"), frame["firm_id"]], ignore_index=True))
    apps = Applications(frame, index)
    old = {}
    for source, (_, kind, lookback) in SOURCES.items():
        if kind == "monthly":
            old[source] = MonthlyWindow(MonthlyTable(source, tables[source], index), apps, lookback).months_known()
        else:
            old[source] = EventWindow(EventTable(source, tables[source], index), apps, lookback).count()
    # the bill share as the other monthly shares count it, from the month of founding
    founded = EventWindow(EventTable("firms", tables["firms"], index), apps, 12).latest("available_date")["founding_date"]
    old["bills_from_founding"] = MonthlyWindow(MonthlyTable("bills", tables["bills"], index), apps, 12).coverage_share(founded)
    day = pd.to_datetime(X["application_date"])
    first = (day < day.min() + pd.DateOffset(months=12)).to_numpy()
    last = (day >= day.max() - pd.DateOffset(months=12)).to_numpy()
    return X, old, first, last


def difference(values: np.ndarray, early: np.ndarray, late: np.ndarray) -> tuple[float, float]:
    """Mean of ``values[late]`` minus mean of ``values[early]``, and its standard error."""
    a, b = values[early], values[late]
    return float(b.mean() - a.mean()), float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))


@pytest.mark.parametrize("source", list(SOURCES))
def test_coverage_share_does_not_trend_with_the_application_date(coverage, source):
    X, old, first, last = coverage
    new = X[SOURCES[source][0]].to_numpy()
    recorded = new > 0
    assert (first & recorded).sum() >= 500 and (last & recorded).sum() >= 500, "too few applications to compare"
    d, se = difference(new, first & recorded, last & recorded)
    assert Z * se <= POWER, f"{source}: a drift under {Z * se:.3f} would pass unseen; use a larger hub"
    assert abs(d) <= Z * se, f"{source}: the mean share moves by {d:+.4f} from the first year of applications to the last ({d / se:+.1f} standard errors)"
    early, late = new[first & recorded].mean(), new[last & recorded].mean()
    # the old count on the same applications: the comparison can fail
    old_early, old_late = old[source][first & recorded].mean(), old[source][last & recorded].mean()
    assert old_late / old_early >= 1.5, (source, old_early, old_late)
    assert abs(old_late / old_early - 1) > 10 * abs(late / early - 1)


def test_the_bill_share_counted_from_founding_trends(coverage):
    """Bills start about a year after founding, so counted from founding, a user aged one to two years has
    a low share for that reason alone. Such users are a larger part of the first year's applications than
    of the last: the generator's founding dates are densest four to six years before the snapshot, and
    late applications are more often repeat applications of older firms. The comparison sees the drift."""
    X, old, first, last = coverage
    v = old["bills_from_founding"]
    recorded = v > 0
    assert np.array_equal(recorded, X["coverage_bills_share_12m"].to_numpy() > 0)  # the same applications
    d, se = difference(v, first & recorded, last & recorded)
    assert d > Z * se, (d, se)
    age = X["firm_age_years"].to_numpy()
    young = (age >= 1) & (age < 2)
    assert v[recorded & young].mean() < 0.6 and v[recorded & (age >= 2)].mean() > 0.9
    assert young[first & recorded].mean() > 1.5 * young[last & recorded].mean()
    # counted from the first disclosure, young users are not set apart
    new = X["coverage_bills_share_12m"].to_numpy()
    assert abs(new[recorded & young].mean() - new[recorded & (age >= 2)].mean()) < 0.05


def test_coverage_is_a_share_without_missing_values(coverage):
    X, _, _, _ = coverage
    values = X[[v[0] for v in SOURCES.values()]].to_numpy()
    assert not np.isnan(values).any()
    assert values.min() >= 0.0 and values.max() <= 1.0
    # not constant: a share of 1 is common but not universal, and firms without a record give 0
    for col in X.columns.intersection([v[0] for v in SOURCES.values()]):
        assert 0.05 < (X[col] == 1.0).mean() < 0.95 and (X[col] == 0.0).any(), col
