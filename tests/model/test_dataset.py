"""The labelled set of a data hub (riskmodel.dataset): the feature cache follows the content of the
tables and the feature code, the outcome join and the feature file given for a hub are checked."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodel import dataset
from riskmodel.errors import UserError


@pytest.fixture
def hub(small_hub, tmp_path):
    """A private copy of the session's small hub without its cache (the tests write into it)."""
    dst = tmp_path / "hub"
    shutil.copytree(small_hub, dst, ignore=shutil.ignore_patterns("cache"))
    return dst


def test_editing_a_table_after_generation_rebuilds_the_features(hub):
    """Issue 17, class 5: the key was manifest.json alone, so an edited table kept the old features."""
    first, _, a = dataset.feature_matrix(hub)
    assert a.cache_status == "written"
    firms = pd.read_parquet(hub / "firms.parquet")
    firm = str(firms["firm_id"].iloc[0])
    firms.loc[0, "registered_capital"] = firms.loc[0, "registered_capital"] * 10 + 1000
    firms.to_parquet(hub / "firms.parquet", index=False)  # manifest.json is untouched

    second, _, b = dataset.feature_matrix(hub)
    assert b.cache_status == "written" and b.cache_path != a.cache_path
    assert b.data_fingerprint != a.data_fingerprint and b.manifest_hash == a.manifest_hash
    rows = (second["firm_id"] == firm).to_numpy()
    assert rows.any()
    assert np.all(second.loc[rows, "registered_capital"].to_numpy() > first.loc[rows, "registered_capital"].to_numpy())
    others = ~rows
    np.testing.assert_allclose(second.loc[others, "registered_capital"], first.loc[others, "registered_capital"], rtol=0, atol=0)

    third, _, c = dataset.feature_matrix(hub)
    assert c.cache_status == "hit" and c.cache_path == b.cache_path
    pd.testing.assert_frame_equal(third, second)


def test_table_hashes_are_remembered_and_redone_for_a_changed_file(hub, monkeypatch):
    calls = []
    real = dataset.file_hash
    monkeypatch.setattr(dataset, "file_hash", lambda p, n=16: calls.append(Path(p).name) or real(p, n))
    fp = dataset.data_fingerprint(hub)
    assert sorted(calls) == sorted(p.name for p in dataset.hub_files(hub)) and "manifest.json" in calls
    memo = json.loads((hub / "cache" / dataset.FINGERPRINT_MEMO).read_text())
    assert set(memo) == set(calls)

    calls.clear()
    assert dataset.data_fingerprint(hub) == fp and calls == []  # nothing read again
    st = (hub / "bids.parquet").stat()
    os.utime(hub / "bids.parquet", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched, same bytes
    assert dataset.data_fingerprint(hub) == fp and calls == ["bids.parquet"]

    calls.clear()
    assert dataset.data_fingerprint(hub, remember=False) == fp and calls == []
    (hub / "cache" / dataset.FINGERPRINT_MEMO).write_text("{not json")  # a broken memo is only a slower run
    assert dataset.data_fingerprint(hub) == fp and len(calls) == len(dataset.hub_files(hub))


def test_an_unreadable_cache_file_is_built_again(hub, caplog):
    good, _, a = dataset.feature_matrix(hub)
    Path(a.cache_path).write_bytes(Path(a.cache_path).read_bytes()[:500])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger="riskmodel.dataset"):
        again, _, b = dataset.feature_matrix(hub)
    assert b.cache_status == "written" and b.cache_path == a.cache_path
    assert "cannot be read" in caplog.text and "building the features again" in caplog.text
    pd.testing.assert_frame_equal(again, good)
    assert dataset.feature_matrix(hub)[2].cache_status == "hit"


def test_without_writing_the_cache_nothing_is_written(hub):
    _, _, info = dataset.feature_matrix(hub, write_cache=False)
    assert info.cache_status == "not_written" and not (hub / "cache").exists()
    _, _, info = dataset.feature_matrix(hub, use_cache=False)
    assert info.cache_status == "disabled" and not (hub / "cache").exists()


_PROBE = """
import json, sys
import features.build
from riskmodel import dataset
frame, catalog, info = dataset.feature_matrix(sys.argv[1])
print(json.dumps({"status": info.cache_status, "path": info.cache_path, "catalog_version": info.catalog_version,
                  "code_version": info.code_version, "features_at": features.build.__file__,
                  "age": frame["firm_age_years"].tolist()}))
"""


def _probe(hub: Path, cwd: Path, code_root: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"RISKMODEL_THREADS": "1"}
    if code_root is not None:
        env["PYTHONPATH"] = str(code_root)  # ahead of the installed package
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(hub)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_changed_formula_rebuilds_and_another_process_reads_the_cache(hub, tmp_path):
    """The stale-cache bug of issue 16: the key was the catalog's text, so editing a signal's
    formula (and nothing in its catalog entry) reused the old features. A copy of the feature code
    with one formula changed runs in its own process, ahead of the installed package."""
    import features

    written = _probe(hub, tmp_path)
    assert written["status"] == "written"
    read = _probe(hub, tmp_path)  # a second process reads what the first one wrote
    assert read["status"] == "hit" and read["path"] == written["path"]
    np.testing.assert_array_equal(np.array(read["age"], dtype="float64"), np.array(written["age"], dtype="float64"))

    code = tmp_path / "code"
    shutil.copytree(Path(features.__file__).parent, code / "features", ignore=shutil.ignore_patterns("__pycache__"))
    firm = code / "features" / "signals" / "firm.py"
    text = firm.read_text(encoding="utf-8")
    formula = "np.where(np.isnat(founded), np.nan, days / 365.25)"
    assert text.count(formula) == 1
    firm.write_text(text.replace(formula, formula.replace("365.25", "365.0")), encoding="utf-8")  # the description still says 365.25

    changed = _probe(hub, tmp_path, code)
    assert Path(changed["features_at"]).is_relative_to(code)
    assert changed["catalog_version"] == written["catalog_version"]  # the old key would not have moved
    assert changed["code_version"] != written["code_version"]
    assert changed["status"] == "written" and changed["path"] != written["path"]
    old, new = np.array(written["age"], dtype="float64"), np.array(changed["age"], dtype="float64")
    known = np.isfinite(old) & (old > 0)
    assert known.sum() > 1000
    np.testing.assert_allclose(new[known], old[known] * 365.25 / 365.0, rtol=1e-12)


def test_labelled_set_joins_outcomes_and_splits_out_of_time(hub):
    ls = dataset.load_labelled(hub, cut="2024-07-01")
    outcomes = pd.read_parquet(hub / "outcomes.parquet")
    assert len(ls.labelled) == len(outcomes) and len(ls.features) == len(pd.read_parquet(hub / "applications.parquet"))
    assert len(ls.train) + len(ls.test) == len(ls.labelled)
    assert (ls.train["application_date"] < ls.cut).all() and (ls.test["application_date"] >= ls.cut).all()
    assert ls.cut == pd.Timestamp("2024-07-01") and ls.info.cache_status == "written"
    by_id = outcomes.set_index(outcomes["application_id"].astype(str))["default_12m"]
    assert (ls.labelled["default_12m"].to_numpy() == by_id.loc[ls.labelled["application_id"].astype(str)].to_numpy()).all()
    with pytest.raises(UserError, match=r"out-of-time split: cut date 2031-01-01 leaves no test rows"):
        dataset.load_labelled(hub, cut="2031-01-01")


def test_duplicated_ids_are_a_clear_error():
    feats = pd.DataFrame({"application_id": ["A1", "A2", "A2"], "application_date": ["2024-01-01"] * 3, "x": [1.0, 2.0, 3.0]})
    outcomes = pd.DataFrame({"application_id": ["A1", "A2"], "default_12m": [0, 1]})
    with pytest.raises(UserError, match=r"the feature matrix of HUB has 1 duplicate application_id\(s\) \(first: A2\)"):
        dataset.join_outcomes(feats, outcomes, "HUB")
    twice = pd.DataFrame({"application_id": [1, 1, 2], "default_12m": [0, 1, 0]})  # ids compared as strings
    with pytest.raises(UserError, match=r"HUB/outcomes.parquet has 1 duplicate application_id\(s\) \(first: 1\)"):
        dataset.join_outcomes(feats.drop_duplicates("application_id").assign(application_id=["1", "2"]), twice, "HUB")
    with pytest.raises(UserError, match=r"HUB: no application has an outcome yet"):
        dataset.join_outcomes(feats.head(1), outcomes.tail(1), "HUB")


def test_a_feature_file_must_be_the_hubs_own(hub, tmp_path):
    own, _, _ = dataset.feature_matrix(hub, use_cache=False)
    own.to_parquet(tmp_path / "own.parquet", index=False)
    ls = dataset.load_labelled(hub, features_file=tmp_path / "own.parquet")
    assert ls.info.cache_status == "given" and len(ls.labelled) == len(pd.read_parquet(hub / "outcomes.parquet"))

    # the same application ids, but other firms and dates: a hub generated with another seed
    from synthetic import GeneratorParams, generate

    other = tmp_path / "other"
    generate(GeneratorParams(firms=1500, seed=12), other)
    theirs, _, _ = dataset.feature_matrix(other, use_cache=False)
    assert set(theirs["application_id"]) & set(own["application_id"])
    theirs.to_parquet(tmp_path / "theirs.parquet", index=False)
    with pytest.raises(UserError, match=r"theirs.parquet: .*(are not applications of|have another firm or date than in) .*built from another data hub"):
        dataset.load_labelled(hub, features_file=tmp_path / "theirs.parquet")

    cases = {
        "extra": (own.assign(default_12m=0), r"column\(s\) \['default_12m'\] are not features of the catalog"),
        "fewer": (own.drop(columns=["registered_capital"]), r"1 feature\(s\) of the catalog are missing \(registered_capital\)"),
        "rows": (own.iloc[1:], r"1 application\(s\) of .* are not in the file"),
        "ids": (own.drop(columns=["firm_id"]), r"not a feature matrix \(no column firm_id\)"),
    }
    for name, (frame, match) in cases.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
        with pytest.raises(UserError, match=match):
            dataset.load_labelled(hub, features_file=tmp_path / f"{name}.parquet")


def test_train_refuses_a_feature_file_of_another_hub(cli, mlflow_store, hub, tmp_path):
    own, _, _ = dataset.feature_matrix(hub, use_cache=False)
    shifted = own.assign(application_date=pd.to_datetime(own["application_date"]) - pd.Timedelta(days=40))
    shifted.to_parquet(tmp_path / "f.parquet", index=False)
    code, out, err = cli("train", "--data", hub, "--model", "scorecard", "--features-file", tmp_path / "f.parquet", "--experiment", mlflow_store.experiment)
    assert code == 2 and "have another firm or date than in" in err and "Traceback" not in err
    from riskmodel import tracking

    exp = tracking.client().get_experiment_by_name(mlflow_store.experiment)
    assert tracking.client().search_runs([exp.experiment_id]) == []  # refused before any run


def test_a_partitioned_build_gives_the_labelled_set_in_application_order(hub, monkeypatch):
    """A build of several partitions writes rows partition by partition; the labelled set is put
    back in the order of the applications table, so training sees the same rows in the same order."""
    from functools import partial

    from features.partitions import build_hub

    one = dataset.load_labelled(hub, use_cache=False)
    monkeypatch.setattr(dataset, "build_hub", partial(build_hub, partitions=5))
    five = dataset.load_labelled(hub, use_cache=False)
    assert five.info.cache_status == "disabled"
    apps = pd.read_parquet(hub / "applications.parquet")
    assert five.features["application_id"].astype(str).tolist() == apps["application_id"].astype(str).tolist()
    for a, b in ((one.features, five.features), (one.train, five.train), (one.test, five.test)):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


def test_part_files_are_fingerprinted_by_their_path(hub):
    parted = hub.parent / "parted"
    parted.mkdir()
    shutil.copy(hub / "manifest.json", parted / "manifest.json")
    for f in hub.glob("*.parquet"):
        (parted / f.stem).mkdir()
        shutil.copy(f, parted / f.stem / "part-00000.parquet")
    files = [p.relative_to(parted).as_posix() for p in dataset.hub_files(parted)]
    assert files[:3] == ["manifest.json", "firms/part-00000.parquet", "financials/part-00000.parquet"]
    before = dataset.data_fingerprint(parted)
    assert before != dataset.data_fingerprint(hub)
    shutil.copy(hub / "bids.parquet", parted / "bids" / "part-00001.parquet")
    assert dataset.data_fingerprint(parted) != before
