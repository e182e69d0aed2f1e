"""Coverage signals do not trend with the application date on a generated hub; the old counts did.

The session hub (1,500 firms, seed 11) starts its tables in January 2021 and its applications a year
later. The old signals counted the months (36) or statements and claims (60 months) on record, so
every application saw more history than the one before. Rebuilt here from the same windows
(``MonthlyWindow.months_known``, ``EventWindow.count``), their mean over the firms with a record
more than doubles from the first six months of applications to the last six.

The comparison is among applications whose firm has a record of the source in the window: the
share of firms with none is the population's (firms without a meter, feeds connected during the
hub's life, non-filers), which the coverage signals report rather than remove.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.asof import Applications, EventTable, EventWindow, FirmIndex, MonthlyTable, MonthlyWindow
from features.build import _applications, build_features
from features.tables import load_tables

pytestmark = pytest.mark.slow  # builds the coverage features of the session hub

SOURCES = {  # new signal, old definition: (window, lookback)
    "electricity": ("coverage_electricity_share_12m", "monthly", 36),
    "social_security": ("coverage_social_security_share_12m", "monthly", 36),
    "invoices": ("coverage_invoices_share_12m", "monthly", 36),
    "bills": ("coverage_bills_share_12m", "monthly", 36),
    "financials": ("coverage_financials_share_24m", "event", 60),
    "rnd_deductions": ("coverage_rnd_deductions_share_24m", "event", 60),
}
TOLERANCE = 0.05  # measured on this hub: at most 0.021 between the first and last six months


@pytest.fixture(scope="module")
def coverage(small_hub):
    tables, _ = load_tables(small_hub)
    X = build_features(tables, features=[v[0] for v in SOURCES.values()])
    frame = _applications(tables, None, None)
    index = FirmIndex(pd.concat([tables["firms"]["firm_id"].astype("string"), frame["firm_id"]], ignore_index=True))
    apps = Applications(frame, index)
    old = {}
    for source, (_, kind, lookback) in SOURCES.items():
        if kind == "monthly":
            old[source] = MonthlyWindow(MonthlyTable(source, tables[source], index), apps, lookback).months_known()
        else:
            old[source] = EventWindow(EventTable(source, tables[source], index), apps, lookback).count()
    day = pd.to_datetime(X["application_date"])
    first = (day < day.min() + pd.DateOffset(months=6)).to_numpy()
    last = (day >= day.max() - pd.DateOffset(months=6)).to_numpy()
    return X, old, first, last


@pytest.mark.parametrize("source", list(SOURCES))
def test_coverage_share_does_not_trend_with_the_application_date(coverage, source):
    X, old, first, last = coverage
    new = X[SOURCES[source][0]].to_numpy()
    recorded = new > 0
    assert (first & recorded).sum() >= 20 and (last & recorded).sum() >= 80, "too few applications to compare"
    early, late = new[first & recorded].mean(), new[last & recorded].mean()
    assert abs(late - early) <= TOLERANCE, (source, early, late)
    # the old count on the same applications: the comparison can fail
    old_early, old_late = old[source][first & recorded].mean(), old[source][last & recorded].mean()
    assert old_late / old_early >= 1.5, (source, old_early, old_late)
    assert abs(old_late / old_early - 1) > 10 * abs(late / early - 1)


def test_coverage_is_a_share_without_missing_values(coverage):
    X, _, _, _ = coverage
    values = X[[v[0] for v in SOURCES.values()]].to_numpy()
    assert not np.isnan(values).any()
    assert values.min() >= 0.0 and values.max() <= 1.0
    # not constant: a share of 1 is common but not universal, and firms without a record give 0
    for col in X.columns.intersection([v[0] for v in SOURCES.values()]):
        assert 0.05 < (X[col] == 1.0).mean() < 0.95 and (X[col] == 0.0).any(), col
