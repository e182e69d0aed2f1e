"""Batch scoring: outputs, row accounting, row-level rejects, whole-batch errors, atomic writes.

One scorecard is trained on the session's small generated hub (the ``trained_model`` fixture); each
test scores a feature file derived from that hub's feature matrix.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from riskmodel.creditmodel import output_columns
from riskmodel.errors import ScoringError, UserError
from riskmodel.scoring import AtomicParquetWriter, score

OUT_COLUMNS = ["application_id", "firm_id", "application_date", *output_columns(3), "model_name", "model_version"]


@pytest.fixture
def model(trained_model):
    """A scorecard trained and promoted to champion in a private store (once per session)."""
    return trained_model("scorecard", name="scoring-scorecard", experiment="scoring")


@pytest.fixture
def env(model, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model.store)
    return model.uri, model.matrix.copy(), tmp_path


def test_scores_every_row_with_reasons(env):
    uri, matrix, tmp = env
    matrix.to_parquet(tmp / "in.parquet")
    s = score(uri, tmp / "scores.parquet", features=tmp / "in.parquet", chunk_size=500)
    assert s.rows_in == len(matrix) == s.scored + s.rejected
    assert s.rejected == 0
    out = pd.read_parquet(tmp / "scores.parquet")
    assert list(out.columns) == OUT_COLUMNS
    assert out["application_id"].tolist() == matrix["application_id"].tolist()
    assert out["pd"].between(0, 1).all() and out["pd"].notna().all()
    assert out["model_name"].eq("scoring-scorecard").all() and out["model_version"].eq("1").all()
    # higher PD never gets a better (lower) score
    order = np.argsort(out["pd"].to_numpy())
    assert np.all(np.diff(out["score"].to_numpy()[order]) <= 1e-9)
    # reason texts come from the catalog, in both languages, for every reason given
    has = out["reason_1"].notna()
    assert has.mean() > 0.9
    assert out.loc[has, "reason_1_zh"].str.len().gt(0).all() and out.loc[has, "reason_1_en"].str.len().gt(0).all()
    assert (out.loc[has, "reason_1_zh"].astype(str) != out.loc[has, "reason_1_en"].astype(str)).all()


def test_output_does_not_depend_on_chunk_size(env):
    uri, matrix, tmp = env
    matrix.to_parquet(tmp / "in.parquet")
    score(uri, tmp / "a.parquet", features=tmp / "in.parquet", chunk_size=7)
    score(uri, tmp / "b.parquet", features=tmp / "in.parquet", chunk_size=100_000)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp / "a.parquet"), pd.read_parquet(tmp / "b.parquet"))


def test_pyfunc_gives_the_same_answer_as_batch_scoring(env):
    from riskmodel import tracking

    uri, matrix, tmp = env
    head = matrix.head(50)
    head.to_parquet(tmp / "in.parquet")
    score(uri, tmp / "s.parquet", features=tmp / "in.parquet")
    batch = pd.read_parquet(tmp / "s.parquet")
    cm, _, _ = tracking.load_credit_model(uri)
    pyfunc = tracking.load_model(uri).predict(head[cm.features])
    for col in output_columns(3):
        if col in ("pd", "score"):
            np.testing.assert_allclose(pyfunc[col].to_numpy(float), batch[col].to_numpy(float), rtol=1e-12)
        else:
            assert pyfunc[col].fillna("").tolist() == batch[col].fillna("").tolist(), col


def test_row_level_problems_are_rejected_with_reasons(env):
    uri, matrix, tmp = env
    bad = matrix.head(40).copy()
    numeric = "firm_size_headcount"
    bad[numeric] = bad[numeric].astype(object)
    bad.loc[1, numeric] = "twelve"  # string in a numeric column
    bad.loc[2, numeric] = np.inf  # infinite
    bad.loc[3, numeric] = -4.0  # negative headcount
    bad.loc[4, "application_id"] = bad.loc[0, "application_id"]  # duplicate id
    bad.loc[5, "application_id"] = None  # missing id
    bad.loc[6, numeric] = np.nan  # missing value: scored, not rejected
    bad.loc[7, numeric] = 1e15  # absurd magnitude
    bad[numeric] = bad[numeric].astype(str).replace({"nan": None})
    bad.to_parquet(tmp / "bad.parquet")
    s = score(uri, tmp / "s.parquet", features=tmp / "bad.parquet")
    assert (s.rows_in, s.scored, s.rejected) == (40, 34, 6)
    rej = pd.read_parquet(tmp / "s.rejects.parquet").set_index("row")
    assert rej.loc[1, "reject_code"] == "NOT_NUMERIC" and "twelve" in rej.loc[1, "reject_reason"]
    assert rej.loc[2, "reject_code"] == "NOT_FINITE"
    assert rej.loc[3, "reject_code"] == "OUT_OF_RANGE" and numeric in rej.loc[3, "reject_reason"]
    assert rej.loc[4, "reject_code"] == "DUPLICATE_ID"
    assert rej.loc[5, "reject_code"] == "MISSING_ID"
    assert rej.loc[7, "reject_code"] == "OUT_OF_RANGE"
    assert s.rejects_by_reason == {"NOT_NUMERIC": 1, "NOT_FINITE": 1, "OUT_OF_RANGE": 2, "DUPLICATE_ID": 1, "MISSING_ID": 1}
    scored = pd.read_parquet(tmp / "s.parquet")
    assert bad.loc[6, "application_id"] in set(scored["application_id"])


def test_a_scorecard_needs_and_checks_only_the_features_it_uses(env):
    """A value the model ignores never rejects a row, and its column may be absent: the scorecard's
    unselected features do not enter the score (CreditModel.used_features)."""
    from riskmodel import tracking

    uri, matrix, tmp = env
    cm, _, _ = tracking.load_credit_model(uri)
    spec = cm.input_spec()
    assert "firm_size_headcount" in spec["numeric"] and "firm_size_headcount" in spec["lower_bounds"]  # the other tests rely on it
    unused = [c for c in cm.features if c not in cm.used_features]
    assert unused and set(spec["numeric"] + spec["categorical"]) == set(cm.used_features)
    head = matrix.head(30)
    head.to_parquet(tmp / "clean.parquet")
    messy = head.drop(columns=unused[1:]).astype({unused[0]: object})
    messy[unused[0]] = "not a number"
    messy.to_parquet(tmp / "messy.parquet")
    a = score(uri, tmp / "a.parquet", features=tmp / "clean.parquet")
    b = score(uri, tmp / "b.parquet", features=tmp / "messy.parquet")
    assert (a.scored, b.scored, b.rejected) == (30, 30, 0)
    np.testing.assert_array_equal(pd.read_parquet(tmp / "a.parquet")["pd"], pd.read_parquet(tmp / "b.parquet")["pd"])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_duplicates_across_chunks_are_rejected(env, suffix):
    """Found by the first pass over the ids; its bucket files (beside the output) are gone after."""
    uri, matrix, tmp = env
    part = matrix.head(20)
    dup = pd.concat([part, part.head(3)], ignore_index=True)
    path = tmp / f"dup{suffix}"
    dup.to_parquet(path) if suffix == ".parquet" else dup.to_csv(path, index=False)
    s = score(uri, tmp / "s.parquet", features=path, chunk_size=8)
    assert (s.rows_in, s.scored, s.rejected) == (23, 20, 3)
    assert pd.read_parquet(tmp / "s.rejects.parquet")["row"].tolist() == [20, 21, 22]
    assert sorted(p.name for p in tmp.iterdir()) == sorted([path.name, "s.parquet", "s.rejects.parquet"])


def test_an_input_that_changes_between_the_two_passes_fails(env):
    """Scoring reads a file twice; if it has other rows the second time, the batch stops."""
    from riskmodel import tracking
    from riskmodel.scoring import find_duplicate_rows, iter_chunks, score_frames

    uri, matrix, tmp = env
    matrix.head(10).to_parquet(tmp / "in.parquet")
    found = find_duplicate_rows(tmp / "in.parquet", 4, tmp)
    credit_model, _, _ = tracking.load_credit_model(uri)
    matrix.head(12).to_parquet(tmp / "in.parquet")
    with pytest.raises(ScoringError, match=r"in.parquet: the input changed while it was read: more than the 10 rows"):
        score_frames(credit_model, iter_chunks(tmp / "in.parquet", 4), tmp / "s.parquet", source=str(tmp / "in.parquet"), duplicates=found)
    matrix.head(9).to_parquet(tmp / "in.parquet")
    with pytest.raises(ScoringError, match=r"the input changed while it was read: 9 rows, its first pass saw 10"):
        score_frames(credit_model, iter_chunks(tmp / "in.parquet", 4), tmp / "s.parquet", duplicates=found)
    assert sorted(p.name for p in tmp.iterdir()) == ["in.parquet"]


def test_extra_columns_are_reported_and_ignored(env):
    uri, matrix, tmp = env
    m = matrix.head(10).assign(branch_code="SH-01", note=1.0)
    m.to_parquet(tmp / "in.parquet")
    s = score(uri, tmp / "s.parquet", features=tmp / "in.parquet")
    assert s.scored == 10 and s.extra_columns[-2:] == ["branch_code", "note"]


def test_csv_input_scores_like_parquet(env):
    uri, matrix, tmp = env
    head = matrix.head(30)
    head.to_parquet(tmp / "in.parquet")
    head.to_csv(tmp / "in.csv", index=False)
    score(uri, tmp / "a.parquet", features=tmp / "in.parquet")
    score(uri, tmp / "b.parquet", features=tmp / "in.csv")
    a, b = pd.read_parquet(tmp / "a.parquet"), pd.read_parquet(tmp / "b.parquet")
    np.testing.assert_allclose(a["pd"], b["pd"], rtol=1e-9)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda m, p: m.drop(columns=["firm_size_headcount"]).to_parquet(p), r"required column\(s\) missing: firm_size_headcount"),
        (lambda m, p: m.drop(columns=["application_id"]).to_parquet(p), r"no application_id column"),
        (lambda m, p: p.write_bytes(b""), r"empty \(0 bytes\)"),
        (lambda m, p: p.write_text("this is not parquet"), r"not a readable Parquet file"),
        (lambda m, p: p.write_bytes(m.head(50).to_parquet()[:300]), r"not a readable Parquet file"),
        (lambda m, p: p.mkdir(), r"is a directory"),
    ],
    ids=["missing-feature", "missing-id", "zero-bytes", "not-parquet", "truncated", "directory"],
)
def test_whole_batch_errors_write_nothing(env, make, match):
    uri, matrix, tmp = env
    path = tmp / "in.parquet"
    make(matrix, path)
    with pytest.raises(ScoringError, match=match):
        score(uri, tmp / "s.parquet", features=path)
    assert not (tmp / "s.parquet").exists() and not (tmp / "s.rejects.parquet").exists()
    assert not list(tmp.glob(".s.*.tmp"))


def test_empty_file_with_columns_gives_empty_outputs(env):
    uri, matrix, tmp = env
    matrix.head(0).to_parquet(tmp / "in.parquet")
    s = score(uri, tmp / "s.parquet", features=tmp / "in.parquet")
    assert (s.rows_in, s.scored, s.rejected) == (0, 0, 0)
    assert len(pd.read_parquet(tmp / "s.parquet")) == 0


def test_unknown_model_and_unset_alias(env):
    _, matrix, tmp = env
    matrix.head(5).to_parquet(tmp / "in.parquet")
    with pytest.raises(ScoringError, match="cannot load model 'models:/no-such-model@champion'"):
        score("models:/no-such-model@champion", tmp / "s.parquet", features=tmp / "in.parquet")
    with pytest.raises(ScoringError, match=r"is the alias set\?"):
        score("models:/scoring-scorecard@challenger", tmp / "s.parquet", features=tmp / "in.parquet")
    assert sorted(p.name for p in tmp.iterdir()) == ["in.parquet"]  # the first pass stopped and cleaned up


def test_output_path_problems_fail_before_work(env):
    uri, matrix, tmp = env
    matrix.head(5).to_parquet(tmp / "in.parquet")
    (tmp / "spark-output.parquet").mkdir()  # a folder with a file's name (a Spark output is one)
    with pytest.raises(UserError, match="spark-output.parquet is a folder; give a file path inside it"):
        score(uri, tmp / "spark-output.parquet", features=tmp / "in.parquet")
    with pytest.raises(UserError, match="is a folder; give a file path inside it"):
        score(uri, tmp, features=tmp / "in.parquet")
    with pytest.raises(UserError, match="no suffix; the suffix decides the format, use .csv or .parquet"):
        score(uri, tmp / "scores", features=tmp / "in.parquet")


def test_a_missing_output_folder_is_created(env):
    # One folder rule for every command (features.files): missing parent folders are created.
    # Scoring used to refuse them ("create it first") while `riskmodel features` created them.
    uri, matrix, tmp = env
    matrix.head(5).to_parquet(tmp / "in.parquet")
    s = score(uri, tmp / "new" / "deeper" / "s.parquet", features=tmp / "in.parquet")
    assert s.rows_in == 5 and len(pd.read_parquet(tmp / "new" / "deeper" / "s.parquet")) == s.scored
    assert sorted(p.name for p in (tmp / "new" / "deeper").iterdir()) == ["s.parquet", "s.rejects.parquet"]


def test_a_crash_mid_run_leaves_nothing_at_the_target(tmp_path):
    target = tmp_path / "scores.parquet"
    w = AtomicParquetWriter(target)
    w.write(pd.DataFrame({"a": [1, 2]}))
    w.abort()
    assert not target.exists() and not list(tmp_path.iterdir())
    w = AtomicParquetWriter(target)
    w.write(pd.DataFrame({"a": [1, 2]}))
    w.write(pd.DataFrame({"a": [3]}))
    w.commit(pd.DataFrame({"a": pd.Series(dtype="int64")}))
    assert pd.read_parquet(target)["a"].tolist() == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_cli_json_summary_adds_up(cli, env):
    uri, matrix, tmp = env
    m = matrix.head(25).copy()
    m.loc[3, "application_id"] = m.loc[2, "application_id"]
    m.to_parquet(tmp / "in.parquet")
    code, out, err = cli("score", "--model", uri, "--features", str(tmp / "in.parquet"), "--out", str(tmp / "s.parquet"), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows_in"] == summary["scored"] + summary["rejected"] == 25
    assert summary["rejects_by_reason"] == {"DUPLICATE_ID": 1}


def test_cli_input_errors_are_one_line_without_traceback(cli, env):
    uri, matrix, tmp = env
    matrix.drop(columns=["firm_size_headcount"]).head(5).to_parquet(tmp / "in.parquet")
    code, out, err = cli("score", "--model", uri, "--features", str(tmp / "in.parquet"), "--out", str(tmp / "s.parquet"))
    assert code == 1
    assert err.startswith("error: ") and "firm_size_headcount" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_scores_a_data_directory_point_in_time(cli, model, env):
    uri, matrix, tmp = env
    hub = model.hub
    code, out, err = cli("score", "--model", uri, "--data", str(hub), "--out", str(tmp / "s.parquet"), "--json")
    assert code == 0, err
    summary = json.loads(out)
    apps = pd.read_parquet(hub / "applications.parquet")
    assert summary["rows_in"] == len(apps) == summary["scored"] + summary["rejected"]
    scored = pd.read_parquet(tmp / "s.parquet").set_index("application_id")
    cached = score(uri, tmp / "f.parquet", features=next((hub / "cache").glob("features-*.parquet")))
    assert cached.scored == summary["scored"]
    np.testing.assert_allclose(scored["pd"], pd.read_parquet(tmp / "f.parquet").set_index("application_id").loc[scored.index, "pd"], rtol=1e-12)


def test_monitoring_needs_and_reports_only_the_features_the_model_uses(env):
    """Like scoring, `riskmodel monitor` accepts a batch without a scorecard's unselected
    features, and its PSI table covers the selected ones."""
    from riskmodel import tracking
    from riskmodel.monitoring import monitor

    uri, matrix, tmp = env
    credit_model, _, _ = tracking.load_credit_model(uri)
    unused = [c for c in credit_model.features if c not in credit_model.used_features]
    assert unused, "this scorecard selects every feature: the test needs one it does not"
    matrix.drop(columns=unused).to_parquet(tmp / "in.parquet")
    result = monitor(uri, tmp / "in.parquet", log_run=False)
    assert sorted(f["feature"] for f in result["features"]) == sorted(credit_model.used_features)
    matrix.drop(columns=[credit_model.used_features[0]]).to_parquet(tmp / "in.parquet")
    with pytest.raises(ScoringError, match=rf"1 model feature column\(s\) missing: \['{credit_model.used_features[0]}'\]"):
        monitor(uri, tmp / "in.parquet", log_run=False)


def test_reading_by_chunks_does_not_keep_earlier_row_groups(tmp_path):
    """Arrow memory stays at about one row group while a file is read chunk by chunk. With the
    Parquet reader's pre-buffering on, pyarrow keeps every row group read until the file is
    closed (apache/arrow#39808), so this grew by one row group per chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from riskmodel.scoring import iter_chunks

    rng = np.random.default_rng(0)
    path = tmp_path / "big.parquet"
    with pq.ParquetWriter(path, pa.schema([(f"x{i}", pa.float64()) for i in range(10)])) as writer:
        for _ in range(30):
            writer.write_table(pa.table({f"x{i}": rng.random(20_000) for i in range(10)}))
    group = pq.ParquetFile(path).metadata.row_group(0).total_byte_size
    held = []
    for chunk in iter_chunks(path, 20_000):
        held.append(pa.total_allocated_bytes())
        del chunk
    assert len(held) == 30
    assert held[-1] - held[2] < 3 * group, f"Arrow memory grew by {(held[-1] - held[2]) / group:.1f} row groups over 27 chunks"


def test_progress_bars_show_both_passes(env, capsys):
    """On a terminal, `riskmodel score` shows the pass over the ids, then the scoring, in rows."""
    uri, matrix, tmp = env
    matrix.head(40).to_parquet(tmp / "in.parquet")
    score(uri, tmp / "s.parquet", features=tmp / "in.parquet", chunk_size=16, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"checking ids: 100%.*40(\.0)?/40", err) and re.search(r"scoring: 100%.*40(\.0)?/40", err), err
    score(uri, tmp / "s.parquet", features=tmp / "in.parquet", chunk_size=16)
    assert capsys.readouterr().err == ""


# ---- the output-path rule (features.files) as scoring applies it ------------------------------


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(env):
    from features.errors import OutputError

    uri, matrix, tmp = env
    src = tmp / "in.parquet"
    matrix.head(20).to_parquet(src)
    before = src.read_bytes()
    with pytest.raises(OutputError, match=r"--out .*in.parquet is also an input of this run"):
        score(uri, src, features=src)
    with pytest.raises(OutputError, match=r"--rejects .*in.parquet is also an input of this run"):
        score(uri, tmp / "s.parquet", features=src, rejects=src)
    with pytest.raises(OutputError, match=r"--out and --rejects both name .*s.parquet"):
        score(uri, tmp / "s.parquet", features=src, rejects=tmp / "." / "s.parquet")
    assert src.read_bytes() == before and sorted(p.name for p in tmp.iterdir()) == ["in.parquet"]


def test_no_output_may_overwrite_a_file_of_the_hub_it_reads(env, small_hub, tmp_path):
    from features.errors import OutputError

    uri, _, _ = env
    hub = tmp_path / "hub"
    shutil.copytree(small_hub, hub, ignore=shutil.ignore_patterns("cache", "bills.parquet"))
    for name in ("applications.parquet", "bills.parquet", "truth/truth.parquet"):  # bills is absent from this hub
        with pytest.raises(OutputError, match=rf"--out .*{name} is also an input of this run"):
            score(uri, hub / name, data=hub)
    with pytest.raises(OutputError, match=r"--rejects .*firms.parquet is also an input"):
        score(uri, tmp_path / "s.parquet", data=hub, rejects=hub / "firms.parquet")


def test_the_suffix_decides_the_format(env):
    from features.errors import OutputError

    uri, matrix, tmp = env
    matrix.head(5).to_parquet(tmp / "in.parquet")
    with pytest.raises(OutputError, match=r"--out .*scores.txt: suffix '.txt'; the suffix decides the format, use .csv or .parquet"):
        score(uri, tmp / "scores.txt", features=tmp / "in.parquet")
    with pytest.raises(OutputError, match=r"--rejects .*r.json: suffix '.json'"):
        score(uri, tmp / "scores.parquet", features=tmp / "in.parquet", rejects=tmp / "r.json")


def test_csv_output_has_the_parquet_columns_and_values(env):
    uri, matrix, tmp = env
    m = matrix.head(300).copy()
    m.loc[m.index[:4], "firm_size_headcount"] = -5.0  # four rejects
    m.to_parquet(tmp / "in.parquet")
    s_pq = score(uri, tmp / "scores.parquet", features=tmp / "in.parquet", chunk_size=70)
    s_csv = score(uri, tmp / "scores.csv", features=tmp / "in.parquet", chunk_size=70)
    assert s_csv.rejects == str(tmp / "scores.rejects.csv") and (s_csv.scored, s_csv.rejected) == (s_pq.scored, s_pq.rejected) == (296, 4)
    a, b = pd.read_parquet(tmp / "scores.parquet"), pd.read_csv(tmp / "scores.csv", dtype={"application_id": "string", "firm_id": "string"})
    assert list(b.columns) == list(a.columns) == OUT_COLUMNS and len(b) == len(a) == 296
    np.testing.assert_allclose(b["pd"], a["pd"], rtol=1e-12)
    np.testing.assert_allclose(b["score"], a["score"], rtol=1e-12)
    assert b["application_id"].tolist() == a["application_id"].astype(str).tolist()
    assert (pd.to_datetime(b["application_date"]) == a["application_date"]).all()
    for c in ("grade", "reason_1", "reason_1_zh", "reason_3_en", "model_name", "model_version"):
        assert b[c].fillna("").astype(str).tolist() == a[c].fillna("").astype(str).tolist(), c
    ra, rb = pd.read_parquet(tmp / "scores.rejects.parquet"), pd.read_csv(tmp / "scores.rejects.csv", dtype={"application_id": "string"})
    assert list(rb.columns) == list(ra.columns) and rb["row"].tolist() == ra["row"].tolist() == [0, 1, 2, 3]
    assert rb["reject_reason"].tolist() == ra["reject_reason"].tolist()  # texts with ':' and '=' survive quoting


def test_an_empty_batch_gives_a_csv_with_the_header_only(env):
    uri, matrix, tmp = env
    matrix.head(0).to_parquet(tmp / "in.parquet")
    s = score(uri, tmp / "s.csv", features=tmp / "in.parquet")
    assert s.rows_in == 0
    assert list(pd.read_csv(tmp / "s.csv").columns) == OUT_COLUMNS and len(pd.read_csv(tmp / "s.csv")) == 0


def test_output_permissions_follow_the_umask(env):
    uri, matrix, tmp = env
    matrix.head(10).to_parquet(tmp / "in.parquet")
    for mask, mode in ((0o022, 0o644), (0o077, 0o600)):
        old = __import__("os").umask(mask)
        try:
            score(uri, tmp / f"s{mask:o}" / "s.parquet", features=tmp / "in.parquet")
        finally:
            __import__("os").umask(old)
        for name in ("s.parquet", "s.rejects.parquet"):
            assert (tmp / f"s{mask:o}" / name).stat().st_mode & 0o777 == mode, (mask, name)
