"""Regional NPL tolerance: the band formula's cap and ordering properties, the portfolio table, config errors, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel.errors import UserError
from riskmodel.npl import (
    DEFAULT_FULL,
    INDICATORS,
    REGULATORY_CAP,
    load_config,
    parse_config,
    tolerance_band,
    tolerance_table,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "riskmodel" / "scenarios" / "npl_tolerance.toml"

share = st.floats(0.0, 1.0, allow_nan=False)
volume = st.floats(0.0, 5000.0, allow_nan=False)
indicators = st.fixed_dictionaries({"tech_share": share, "pilot_coverage": share, "ip_pledge": volume})
overall = st.floats(0.0, 0.2, allow_nan=False)
uplift = st.floats(0.0, 0.1, allow_nan=False)  # above the regulatory 3pp on purpose: the cap must hold anyway


@st.composite
def weights(draw):
    raw = [draw(st.floats(0.0, 1.0, allow_nan=False)) for _ in INDICATORS]
    total = sum(raw)
    if total == 0:
        raw, total = [1.0, 0.0, 0.0], 1.0
    return {k: v / total for k, v in zip(INDICATORS, raw)}


@settings(max_examples=200, deadline=None)
@given(overall, indicators, weights(), uplift, st.floats(0.0, 1.0))
def test_band_between_overall_and_cap(o, ind, w, mu, f):
    band = tolerance_band(o, ind, w, DEFAULT_FULL, mu, f)
    assert o - 1e-12 <= band <= o + REGULATORY_CAP + 1e-12
    assert band <= o + mu + 1e-12


@settings(max_examples=200, deadline=None)
@given(overall, indicators, weights(), uplift, st.sampled_from(INDICATORS), st.floats(0.0, 2000.0, allow_nan=False), st.floats(0.0, 1.0))
def test_band_monotone_in_each_indicator(o, ind, w, mu, k, bump, f):
    higher = dict(ind)
    higher[k] = min(ind[k] + bump, 1.0) if k != "ip_pledge" else ind[k] + bump
    assert tolerance_band(o, higher, w, DEFAULT_FULL, mu, f) >= tolerance_band(o, ind, w, DEFAULT_FULL, mu, f) - 1e-15


@settings(max_examples=100, deadline=None)
@given(overall, indicators, weights(), uplift, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_band_monotone_in_industry_factor_and_overall(o, ind, w, mu, f1, f2):
    lo, hi = sorted((f1, f2))
    assert tolerance_band(o, ind, w, DEFAULT_FULL, mu, hi) >= tolerance_band(o, ind, w, DEFAULT_FULL, mu, lo) - 1e-15
    assert tolerance_band(o + 0.01, ind, w, DEFAULT_FULL, mu, lo) > tolerance_band(o, ind, w, DEFAULT_FULL, mu, lo)


@settings(max_examples=100, deadline=None)
@given(overall, weights(), uplift)
def test_band_endpoints(o, w, mu):
    zero = {k: 0.0 for k in INDICATORS}
    full = {k: DEFAULT_FULL[k] * 3 for k in INDICATORS}  # beyond saturation
    assert tolerance_band(o, zero, w, DEFAULT_FULL, mu) == pytest.approx(o, abs=1e-15)
    assert tolerance_band(o, full, w, DEFAULT_FULL, mu) == pytest.approx(o + min(mu, REGULATORY_CAP), abs=1e-12)


def _config(**over) -> dict:
    raw = {
        "overall_npl_ratio": 0.016,
        "regions": {
            "jingjinji": {"tech_share": 0.25, "pilot_coverage": 1.0, "ip_pledge": 500.0},  # saturated: +3pp
            "chengyu": {"tech_share": 0.0, "pilot_coverage": 0.0, "ip_pledge": 0.0},  # no uplift
        },
    }
    raw.update(over)
    return raw


def _scores() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    region = np.where(np.arange(n) < 200, "jingjinji", "chengyu")
    industry = np.where(np.arange(n) % 2 == 0, "ai", "new_energy")
    p = np.where(region == "chengyu", rng.uniform(0.01, 0.04, n), rng.uniform(0.0, 0.02, n))
    return pd.DataFrame({"pd": p, "amount": rng.uniform(10, 500, n), "region": region, "industry": industry})


def test_table_expected_npl_bands_and_flags():
    cfg = parse_config(_config(industries={"new_energy": 0.5}))
    s = _scores()
    t = tolerance_table(s, cfg)
    assert set(t["level"]) == {"overall", "region", "industry", "region_industry"}
    for region, g in s.groupby("region"):
        row = t[(t["level"] == "region") & (t["region"] == region)].iloc[0]
        assert row["expected_npl"] == pytest.approx((g["pd"] * g["amount"]).sum() / g["amount"].sum())
        assert row["n"] == len(g) and row["exposure"] == pytest.approx(g["amount"].sum())
    cell = t[(t["level"] == "region_industry")].set_index(["region", "industry"])
    assert cell.loc[("jingjinji", "ai"), "band"] == pytest.approx(0.016 + 0.03)
    assert cell.loc[("jingjinji", "new_energy"), "band"] == pytest.approx(0.016 + 0.015)
    assert cell.loc[("chengyu", "ai"), "band"] == pytest.approx(0.016)
    # chengyu's expected NPL (~2.5%) exceeds its band (1.6%, no uplift); jingjinji's (~1%) does not exceed 4.6%
    flagged = t[(t["level"] == "region") & t["flag"]]["region"].tolist()
    assert flagged == ["chengyu"]
    assert (t["band"] <= 0.016 + REGULATORY_CAP + 1e-12).all()
    assert np.allclose(t["headroom"], t["band"] - t["expected_npl"])


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"regions": {}}, r"missing required key 'overall_npl_ratio'"),
        ({"overall_npl_ratio": 0.016}, r"missing required key 'regions'"),
        (_config(overall_npl_ratio="1.6%"), r"overall_npl_ratio must be a number, got '1.6%' \(str\)"),
        (_config(max_uplift=0.05), r"max_uplift must be at most 0.03"),
        (_config(regions={"atlantis": {"tech_share": 0.1, "pilot_coverage": 0.1, "ip_pledge": 1.0}}), r"unknown region 'atlantis' in \[regions\]; known regions: jingjinji"),
        (_config(regions={"chengyu": {"tech_share": 0.1, "pilot_coverage": 0.1}}), r"\[regions.chengyu\] is missing \['ip_pledge'\]"),
        (_config(regions={"chengyu": {"tech_share": 1.5, "pilot_coverage": 0.1, "ip_pledge": 1.0}}), r"regions.chengyu.tech_share is a share and must be at most 1"),
        (_config(weights={"tech_share": 0.5, "pilot_coverage": 0.3, "ip_pledge": 0.3}), r"\[weights\] must sum to 1"),
        (_config(industries={"steel": 1.0}), r"unknown industry 'steel'"),
        (_config(colour="red"), r"unknown key\(s\) \['colour'\]"),
        (_config(full={"ip_pledge": 0}), r"full.ip_pledge must be greater than 0"),
    ],
)
def test_bad_config_is_one_clear_error(raw, message):
    with pytest.raises(UserError, match=message) as err:
        parse_config(raw, "cfg.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("cfg.toml: ")


def test_scores_with_unconfigured_region_or_bad_pd(tmp_path):
    cfg = parse_config(_config(), "cfg.toml")
    s = _scores()
    s.loc[5, "region"] = "central"
    with pytest.raises(UserError, match=r"cfg.toml: no \[regions.X\] entry for region\(s\) \['central'\]"):
        tolerance_table(s, cfg)
    s = _scores()
    s.loc[[3, 7], "pd"] = 1.5
    with pytest.raises(UserError, match=r"column 'pd' must hold PDs in \[0, 1\]; 2 row\(s\) do not \(first rows \[3, 7\]\)"):
        tolerance_table(s, cfg)
    with pytest.raises(UserError, match=r"required column 'region' is missing \(pass --data DIR"):
        tolerance_table(_scores().drop(columns="region"), cfg)


def test_shipped_example_config_is_valid():
    from features.tables import REGIONS

    cfg = load_config(EXAMPLE)
    assert set(cfg.regions) == set(REGIONS)
    assert cfg.max_uplift <= REGULATORY_CAP


def test_cli_writes_table_plot_and_json(cli, tmp_path):
    scores = tmp_path / "scores.parquet"
    _scores().to_parquet(scores, index=False)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('overall_npl_ratio = 0.016\n[regions.jingjinji]\ntech_share = 0.25\npilot_coverage = 1.0\nip_pledge = 500.0\n'
                   '[regions.chengyu]\ntech_share = 0.0\npilot_coverage = 0.0\nip_pledge = 0.0\n')
    code, out, err = cli("npl-tolerance", "--scores", scores, "--config", cfg, "--out", tmp_path / "out")
    assert code == 0, err
    assert "regions above band: chengyu" in out
    table = pd.read_parquet(tmp_path / "out" / "npl_tolerance.parquet")
    csv = pd.read_csv(tmp_path / "out" / "npl_tolerance.csv")
    assert list(csv.columns) == list(table.columns) and len(csv) == len(table)
    assert np.allclose(csv["expected_npl"], table["expected_npl"]) and csv["flag"].tolist() == table["flag"].tolist()
    assert (tmp_path / "out" / "npl_tolerance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = cli("npl-tolerance", "--scores", scores, "--config", cfg, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["flagged"] == ["chengyu"] and all(row["band"] <= 0.016 + 0.03 + 1e-12 for row in r["table"])


@pytest.mark.parametrize(
    "text,message",
    [
        ("overall_npl_ratio = [\n", r"not valid TOML"),
        ('overall_npl_ratio = 0.016\n[regions.mars]\ntech_share = 0.1\npilot_coverage = 0.1\nip_pledge = 1.0\n', r"unknown region 'mars'"),
        ('overall_npl_ratio = true\n[regions.chengyu]\ntech_share = 0.1\npilot_coverage = 0.1\nip_pledge = 1.0\n', r"overall_npl_ratio must be a number, got True"),
    ],
)
def test_cli_bad_config_one_line_exit_2(cli, tmp_path, text, message):
    scores = tmp_path / "scores.parquet"
    _scores().to_parquet(scores, index=False)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    code, out, err = cli("npl-tolerance", "--scores", scores, "--config", cfg)
    assert code == 2
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
