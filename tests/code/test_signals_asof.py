"""The point-in-time windows against a naive per-application reference on random tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.asof import Applications, EventTable, EventWindow, FirmIndex, MonthlyTable, MonthlyWindow, last_valid, row_mean, row_std, row_sum

RNG_SEEDS = [0, 1, 2]


def _random_monthly(rng, firms, n_months=30):
    rows = []
    for f in firms:
        for m in pd.date_range("2022-01-01", periods=n_months, freq="MS"):
            if rng.random() < 0.8:
                lag = int(rng.integers(1, 90))  # some rows arrive months late
                rows.append({"firm_id": f, "month": m, "kwh": float(rng.integers(0, 1000)), "available_date": m + pd.DateOffset(months=1) + pd.Timedelta(days=lag)})
    df = pd.DataFrame(rows)
    df["firm_id"] = df["firm_id"].astype("string")
    return df


def _random_apps(rng, firms, n=40):
    days = pd.to_datetime("2022-03-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    return pd.DataFrame({"application_id": [f"x{i}" for i in range(n)], "firm_id": pd.array(rng.choice(firms + ["ghost"], n), dtype="string"), "application_date": days.astype("datetime64[ns]")})


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_monthly_window_matches_naive_reference(seed):
    rng = np.random.default_rng(seed)
    firms = ["F1", "F2", "F3"]
    table = _random_monthly(rng, firms)
    apps = _random_apps(rng, firms)
    before = table.copy(deep=True)
    index = FirmIndex(pd.concat([pd.Series(firms, dtype="string"), apps["firm_id"]]))
    w = MonthlyWindow(MonthlyTable("electricity", table, index), Applications(apps, index), 12)
    got = w.values("kwh")
    by_key = {(r.firm_id, r.month): (r.kwh, r.available_date) for r in table.itertuples()}
    for i, app in enumerate(apps.itertuples()):
        start = app.application_date.to_period("M").to_timestamp()
        for j in range(12):
            kwh, available = by_key.get((app.firm_id, start - pd.DateOffset(months=12 - j)), (np.nan, None))
            want = kwh if available is not None and available < app.application_date else np.nan
            assert (np.isnan(want) and np.isnan(got[i, j])) or got[i, j] == want, (i, j)
    pd.testing.assert_frame_equal(table, before)
    # restrict() is a view of the most recent months
    np.testing.assert_array_equal(w.restrict(3).values("kwh"), got[:, -3:])
    with pytest.raises(ValueError, match="cannot serve a lookback of 13"):
        w.restrict(13)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_event_window_matches_naive_reference(seed):
    rng = np.random.default_rng(seed)
    firms = ["F1", "F2", "F3"]
    n = 60
    award = pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    bids = pd.DataFrame({
        "firm_id": pd.array(rng.choice(firms, n), dtype="string"),
        "bid_id": [f"B{i}" for i in range(n)],
        "award_date": award.astype("datetime64[ns]"),
        "amount": rng.integers(1, 100, n).astype(float),
        "buyer_type": pd.Categorical(rng.choice(["government", "soe"], n), categories=["government", "soe", "university_hospital"]),
        "available_date": (award + pd.to_timedelta(rng.integers(0, 60, n), unit="D")).astype("datetime64[ns]"),
    })
    apps = _random_apps(rng, firms)
    index = FirmIndex(pd.concat([pd.Series(firms, dtype="string"), apps["firm_id"]]))
    w = EventWindow(EventTable("bids", bids, index), Applications(apps, index), 0).restrict(0)
    w24 = EventWindow(EventTable("bids", bids, index), Applications(apps, index), 36).restrict(24)
    count, total, biggest = w24.count(), w24.sum(w24["amount"]), w24.max(w24["amount"])
    latest = w.latest("award_date")["amount"]
    gov = w.count(np.asarray(w["buyer_type"] == "government"))
    for i, app in apps.iterrows():
        known = bids[(bids["firm_id"] == app["firm_id"]) & (bids["available_date"] < app["application_date"])]
        recent = known[known["award_date"] >= app["application_date"] - pd.DateOffset(months=24)]
        assert count[i] == len(recent) and total[i] == recent["amount"].sum()
        assert (np.isnan(biggest[i]) and recent.empty) or biggest[i] == recent["amount"].max()
        assert (np.isnan(latest[i]) and known.empty) or latest[i] == known.sort_values("award_date")["amount"].iloc[-1]
        assert gov[i] == (known["buyer_type"] == "government").sum()


def test_row_helpers_by_hand():
    a = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(row_sum(a), [4.0, np.nan, 6.0])
    np.testing.assert_array_equal(row_mean(a, 2), [2.0, np.nan, 2.0])
    np.testing.assert_array_equal(row_mean(a, 3), [np.nan, np.nan, 2.0])
    np.testing.assert_array_equal(row_std(a), [1.0, np.nan, 0.0])
    np.testing.assert_array_equal(last_valid(a), [3.0, np.nan, 2.0])
