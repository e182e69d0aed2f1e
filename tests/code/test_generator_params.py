"""Unit tests of the generator's parameter validation, identifiers and calendar helpers (no dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from features.errors import UserError
from synthetic import CHUNK_SIZE, GeneratorParams, calibrate
from synthetic import world as sm
from synthetic.identifiers import legal_rep_ids, registration_ids

_USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_W = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def test_defaults_and_manifest_parameters():
    p = GeneratorParams(firms=10)
    assert (p.seed, p.start, p.end, p.default_rate) == (0, "2021-01", "2025-12", 0.03)
    d = p.to_dict()
    assert d == {
        "firms": 10, "seed": 0, "start": "2021-01", "end": "2025-12", "default_rate": 0.03,
        "approval_policy": "traditional", "chunk_size": CHUNK_SIZE,
    }
    assert str(p.calendar.snapshot) == "2025-12-31"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"firms": 0}, "at least 1"),
        ({"firms": -5}, "at least 1"),
        ({"firms": True}, "whole number"),
        ({"firms": 2.5}, "whole number"),
        ({"firms": 20_000_000}, "at most"),
        ({"firms": 5, "seed": -1}, "non-negative"),
        ({"firms": 5, "start": "2021-1"}, "YYYY-MM"),
        ({"firms": 5, "start": "2021-00"}, "YYYY-MM"),
        ({"firms": 5, "end": "Dec 2025"}, "YYYY-MM"),
        ({"firms": 5, "start": "2005-01"}, "between 2010-01 and 2035-12"),
        ({"firms": 5, "start": "2025-06", "end": "2025-01"}, "before --start"),
        ({"firms": 5, "start": "2024-01", "end": "2025-11"}, "at least 24"),
        ({"firms": 5, "default_rate": 0.0}, "between 0.01 and 0.08"),
        ({"firms": 5, "default_rate": 0.081}, "between 0.01 and 0.08"),
        ({"firms": 5, "default_rate": "x"}, "must be a number"),
        ({"firms": 5, "approval_policy": "lenient"}, "--approval-policy must be one of traditional, tech_aware, none, got 'lenient'"),
        ({"firms": 5, "approval_policy": None}, "--approval-policy must be one of"),
    ],
)
def test_bad_parameters_raise_user_error_saying_what_to_change(kwargs, match):
    with pytest.raises(UserError, match=match):
        GeneratorParams(**kwargs)


def test_edge_parameters_are_accepted():
    GeneratorParams(firms=1, start="2023-01", end="2024-12", default_rate=0.01)
    GeneratorParams(firms=1, default_rate=0.08)


def test_registration_ids_are_unique_structured_and_never_valid_codes():
    rng = np.random.default_rng(0)
    idx = np.arange(0, 2_000_000, 7, dtype=np.int64)
    region = rng.integers(0, 6, len(idx))
    ids = registration_ids(idx, region, (1_234_567 * 31 + 1, 98765), rng)
    assert len(set(ids.tolist())) == len(ids)
    assert all(len(s) == 18 and s.startswith("91") for s in ids[:1000])
    for s in ids[:500]:
        total = sum(_USCC.index(ch) * w for ch, w in zip(s[:17], _W))
        assert _USCC[(31 - total % 31) % 31] != s[17]  # deliberately wrong check character
    assert {s[2:8] for s in ids[:1000]} <= {c for r in sm.REG_ADMIN for c in r}


def test_legal_rep_ids_look_like_resident_ids_with_a_wrong_check_digit():
    rng = np.random.default_rng(1)
    founding = np.full(300, np.datetime64("2015-06-01").astype(np.int64))
    ids = legal_rep_ids(founding, rng.integers(0, 6, 300), rng)
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    for s in ids:
        assert len(s) == 18 and s[:17].isdigit()
        assert 1955 <= int(s[6:10]) <= 1991
        assert "10X98765432"[sum(int(c) * k for c, k in zip(s[:17], w)) % 11] != s[17]


def test_calendar_spring_festival_and_month_arithmetic():
    cal = GeneratorParams(firms=1).calendar
    fest = {str(m) for m, f in zip(cal.months, cal.festival) if f}
    assert {"2021-02", "2022-02", "2023-01", "2024-02", "2025-01"} <= fest
    assert cal.months[cal.window_first] == np.datetime64("2021-01")
    d = np.array([np.datetime64("2023-01-28").astype(np.int64)])
    assert sm.add_months(d, 12)[0] == np.datetime64("2024-01-28").astype(np.int64)
    assert sm.month_index(d, cal)[0] == cal.window_first + 24
    june = GeneratorParams(firms=1, start="2021-06", end="2023-12").calendar
    assert june.months[0] == np.datetime64("2020-01") and june.months[june.window_first] == np.datetime64("2021-06")
    assert sm.annual_years(june)[0] == 2020  # the statement year before the window is fully simulated
    assert list(sm.rnd_thresholds(np.array([100.0, 5000.0, 5001.0, 20000.0, 20001.0]))) == [0.05, 0.05, 0.04, 0.04, 0.03]


def test_calibrated_intercept_rises_with_the_target_rate():
    lo = calibrate(GeneratorParams(firms=1, default_rate=0.01))
    mid = calibrate(GeneratorParams(firms=1, default_rate=0.03))
    hi = calibrate(GeneratorParams(firms=1, default_rate=0.08))
    assert lo < mid < hi
