"""Cases a careless or hostile user found (issue: hostile review of the newest commands).

Each test names the command that went wrong before its fix: a traceback (exit 70), a hub changed by
an output written into one of its table folders, a work folder that was a file, and leftovers of a
killed build that a rerun never removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest


def _one_error_line(code: int, err: str, expected_code: int = 2) -> str:
    lines = [ln for ln in err.splitlines() if not ln.startswith(("WARNING", "INFO"))]
    assert code == expected_code and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- validate: a batch with one class -----------------------------------------------------------


@pytest.mark.parametrize("label", [0, 1])
def test_validate_on_a_batch_with_one_class_prints_its_summary(cli, use_champion_store, tmp_path, label):
    """Every statistic that needs both classes is undefined ('-', n/a); before, the baseline line
    formatted a None difference and the command ended in exit 70."""
    features = tmp_path / "batch.parquet"
    use_champion_store.matrix.to_parquet(features, index=False)
    outcomes = pd.read_parquet(use_champion_store.hub / "outcomes.parquet")
    outcomes["default_12m"] = label
    outcomes.to_parquet(tmp_path / "outcomes.parquet", index=False)
    code, out, err = cli("validate", "--model", use_champion_store.uri, "--features", features, "--outcomes", tmp_path / "outcomes.parquet",
                         "--baseline", use_champion_store.uri, "--no-log", "--out", tmp_path / "v")
    assert code in (0, 1) and "Traceback" not in err and "error:" not in err, (code, err)
    assert "AUC - [-, -]" in out and "difference -, z -" in out, out
    assert "note: discrimination not tested: the sample holds only " + ("defaults" if label else "non-defaults") in out, out
    assert (tmp_path / "v" / "validation.json").is_file()


# ---- an output inside an input folder -----------------------------------------------------------


@pytest.fixture
def part_hub(champion, tmp_path) -> Path:
    """A copy of the champion's hub whose electricity table is a folder of two part files."""
    out = tmp_path / "hub"
    shutil.copytree(champion.hub, out, ignore=shutil.ignore_patterns("cache"))
    table = pd.read_parquet(out / "electricity.parquet")
    (out / "electricity.parquet").unlink()
    (out / "electricity").mkdir()
    half = len(table) // 2
    table.iloc[:half].to_parquet(out / "electricity" / "part-00000.parquet", index=False)
    table.iloc[half:].to_parquet(out / "electricity" / "part-00001.parquet", index=False)
    return out


@pytest.mark.parametrize("inside", ["electricity/part-00009.parquet", "firms/part-00000.parquet", "truth/scores.parquet"])
@pytest.mark.parametrize("command", ["features", "score"])
def test_an_output_inside_a_table_folder_of_the_hub_is_refused(cli, use_champion_store, part_hub, command, inside):
    """A new part file in a table's folder would join the table (scores read as electricity rows at
    the next load); a folder that does not exist yet (firms/) would make the table both a file and a
    folder. Before, both commands wrote there and the next load failed or read the wrong rows."""
    before = _snapshot(part_hub)
    args = ["--model", use_champion_store.uri] if command == "score" else []
    code, _, err = cli(command, *args, "--data", part_hub, "--out", part_hub / inside)
    line = _one_error_line(code, err)
    assert f"--out {part_hub / inside} is inside {part_hub / inside.split('/')[0]}, an input folder of this run" in line, line
    assert _snapshot(part_hub) == before and not (part_hub / "firms").exists()


@pytest.mark.parametrize("bad, fragment", [
    ("a_file", "--work-dir {p} is an existing file; give a folder path"),
    ("electricity", "--work-dir {p} is also an input of this run"),
    ("electricity/sub", "--work-dir {p} is inside"),
])
def test_features_work_dir_is_checked_before_any_work(cli, part_hub, tmp_path, bad, fragment):
    """Before, a --work-dir that was a file ended in exit 70 (FileExistsError) after validation."""
    (tmp_path / "a_file").write_text("x")
    path = tmp_path / bad if bad == "a_file" else part_hub / bad
    before = _snapshot(part_hub)
    code, _, err = cli("features", "--data", part_hub, "--out", tmp_path / "f.parquet", "--partition-firms", 500, "--work-dir", path)
    assert fragment.format(p=path) in _one_error_line(code, err)
    assert _snapshot(part_hub) == before and not (tmp_path / "f.parquet").exists()


# ---- kill -9 of a partitioned build -------------------------------------------------------------


def test_a_rerun_removes_what_a_killed_build_left_and_keeps_a_live_ones(cli, part_hub, tmp_path):
    """A build killed with SIGKILL leaves its work folder (the validated partitions: a national
    hub's size) and its temporary output beside --out. Before, no later run removed them. Now the
    next build removes every work folder whose lock is free and the temporaries of its target; a
    live build's folder (lock held) and another target's temporary stay."""
    import fcntl
    import os

    out = tmp_path / "f.parquet"
    dead = tmp_path / ".f.parquet.k1lled00.work"
    (dead / "partition-00000").mkdir(parents=True)
    (dead / ".lock").write_text("")
    (dead / "partition-00000" / "firms.arrow").write_bytes(b"x" * 1000)
    live = tmp_path / ".g.parquet.a11ve000.work"
    live.mkdir()
    (live / ".lock").write_text("")
    stale_tmp = tmp_path / ".f.parquet.k1lled00.tmp"
    stale_tmp.write_bytes(b"partial")
    other_tmp = tmp_path / ".f.parquet.x.abcdefgh.tmp"  # the temporary of target f.parquet.x
    other_tmp.write_bytes(b"another target")
    fd = os.open(live / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, out_text, err = cli("features", "--data", part_hub, "--out", out, "--partition-firms", 500, "--json")
    finally:
        os.close(fd)
    assert code == 0, err
    assert not dead.exists() and not stale_tmp.exists()
    assert live.is_dir() and other_tmp.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".g.parquet.a11ve000.work", ".f.parquet.x.abcdefgh.tmp", "f.parquet", "hub"])


def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    """``features --workers 2`` runs partitions in spawned processes. Before, a parent killed with
    SIGKILL left them alive for ever (blocked writing a result nobody reads, 240 MB each)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "pool.py"
    script.write_text(
        "import threading, time\n"
        "from features.partitions import _Runner\n"
        "if __name__ == '__main__':\n"
        "    with _Runner(2) as runner:\n"
        "        it = runner.map(time.sleep, [(600,), (600,)])\n"
        "        threading.Thread(target=lambda: next(it), daemon=True).start()\n"
        "        while len(runner._pool._processes or {}) < 2:\n"
        "            time.sleep(0.05)\n"
        "        print(' '.join(map(str, runner._pool._processes)), flush=True)\n"
        "        time.sleep(600)\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, str(script)], cwd=root, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2, workers
        time.sleep(1)  # the workers are sleeping in their task
    finally:
        proc.kill()
        proc.wait(timeout=30)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # a zombie has ended

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.2)
    left = [p for p in workers if alive(p)]
    for p in left:  # never leave them behind, even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"


# ---- a damaged truth/ ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [b"garbage", b"PAR1" + b"\0" * 64 + b"PAR1", b""])
def test_a_damaged_truth_file_is_a_warning_not_a_crash(tmp_path, caplog, damage):
    """truth/ is evaluation data only (oracle AUC, through the door). Before, an unreadable
    truth.parquet ended `riskmodel train` in exit 70 after the model was fitted; now it is read as
    an absent truth, with a warning naming the file."""
    from riskmodel.evaluation import load_truth

    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "truth.parquet").write_bytes(damage)
    with caplog.at_level("WARNING", logger="riskmodel.evaluation"):
        assert load_truth(tmp_path) is None
    assert f"{tmp_path / 'truth' / 'truth.parquet'} cannot be read" in caplog.text
    assert "through-the-door metrics not computed" in caplog.text


# ---- score: a feature file without application_id -----------------------------------------------


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_feature_file_without_ids_is_told_to_add_them(cli, use_champion_store, tmp_path, engine):
    """A bring-your-own test file has no application_id; before, the message said to build the
    features with `riskmodel features` or score with --data, which a BYO model cannot do."""
    src = tmp_path / "batch.csv"
    use_champion_store.matrix.head(20).drop(columns=["application_id"]).to_csv(src, index=False)
    code, _, err = cli("score", "--model", use_champion_store.uri, "--features", src, "--out", tmp_path / "s.csv", "--engine", engine)
    line = _one_error_line(code, err, expected_code=1)
    assert f"{src}: no application_id column; scoring needs one unique id per row" in line and "--data" not in line, line
    assert not (tmp_path / "s.csv").exists()


# ---- MLFLOW_TRACKING_URI that holds no store ----------------------------------------------------


@pytest.mark.parametrize("uri, fragment", [
    ("ftp://host/x", "scheme 'ftp' holds no tracking store"),
    ("htp://host:5000", "scheme 'htp' holds no tracking store"),
    ("{tmp}/store", "is a folder store, which MLflow no longer opens by default"),
    ("file://{tmp}/store", "is a folder store, which MLflow no longer opens by default"),
])
@pytest.mark.parametrize("command", ["compare", "validate"])
def test_a_tracking_uri_without_a_store_is_one_line(cli, monkeypatch, tmp_path, uri, fragment, command):
    """Before: exit 70 (MLflow's UnsupportedModelRegistryStoreURIException, or its refusal of the
    file store) with 'this is a bug in riskmodel'."""
    from riskmodel.tracking import store

    monkeypatch.setattr(store, "_prepared", set())
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = uri.format(tmp=tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = ["compare", "--experiment", "x"] if command == "compare" else ["validate", "--run", "abc"]
    code, _, err = cli(*args)
    line = _one_error_line(code, err)
    assert f"MLFLOW_TRACKING_URI {uri!r}" in line and fragment in line, line
    assert not (tmp_path / "store").exists()


def test_a_web_server_that_is_not_mlflow_is_named_not_a_missing_run(cli, monkeypatch, tmp_path):
    """A web server at the address (any page: 404) made every run and model 'not found' (exit 2, the
    wrong way: the run exists on the real server)."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from riskmodel.tracking import store

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(store, "_prepared", set())
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        code, _, err = cli("validate", "--run", "abc")
    finally:
        server.shutdown()
        server.server_close()
    line = _one_error_line(code, err)
    assert f"{uri} answers but is not an MLflow tracking server (GET /health: 404)" in line and "not found" not in line, line


# ---- generate over a dataset that holds other files ---------------------------------------------


def test_generate_keeps_a_users_file_in_a_previous_dataset(cli, tmp_path):
    """A new dataset replaces the whole folder. Before, a file the user had put into a generated
    hub (a feature matrix, notes) was deleted without a word; the feature cache may go."""
    out = tmp_path / "hub"
    code, _, err = cli("generate", "--firms", 5, "--out", out)
    assert code == 0, err
    (out / "cache").mkdir()
    (out / "cache" / "features-x.parquet").write_bytes(b"derived")
    code, _, err = cli("generate", "--firms", 5, "--seed", 1, "--out", out)  # a dataset and its cache: replaced
    assert code == 0, err
    (out / "my_notes.txt").write_text("mine")
    (out / "features.parquet").write_bytes(b"mine too")
    before = _snapshot(out)
    code, _, err = cli("generate", "--firms", 5, "--seed", 2, "--out", out)
    line = _one_error_line(code, err)
    assert f"--out {out} is a generated dataset that also holds 2 file(s) generate did not write (features.parquet, my_notes.txt)" in line, line
    assert _snapshot(out) == before


# ---- dates written as text ----------------------------------------------------------------------


@pytest.mark.parametrize("partition_firms", [50_000, 500])  # in memory, and bucketed through partitions
def test_dates_as_text_are_iso_or_refused_never_guessed(cli, champion, tmp_path, partition_firms):
    """A firms part file with founding dates written day first (21/07/2021). Before, each value was
    guessed on its own: 12/09/2020 became 9 December, 21/07/2021 21 July, and the build reported
    'available_date before founding_date' on some rows or nothing at all. ISO text still reads."""
    hub = tmp_path / "hub"
    shutil.copytree(champion.hub, hub, ignore=shutil.ignore_patterns("cache"))
    firms = pd.read_parquet(hub / "firms.parquet")
    (hub / "firms.parquet").unlink()
    (hub / "firms").mkdir()
    half = len(firms) // 2
    iso = firms.iloc[:half].assign(founding_date=firms["founding_date"].iloc[:half].dt.strftime("%Y-%m-%d"))
    iso.to_parquet(hub / "firms" / "part-00000.parquet", index=False)
    dayfirst = firms.iloc[half:].assign(founding_date=firms["founding_date"].iloc[half:].dt.strftime("%d/%m/%Y"))
    dayfirst.to_parquet(hub / "firms" / "part-00001.parquet", index=False)
    code, _, err = cli("features", "--data", hub, "--out", tmp_path / "f.parquet", "--partition-firms", partition_firms)
    assert code == 2 and "Traceback" not in err, err
    assert (f"{hub / 'firms' / 'part-00001.parquet'}: column 'founding_date': value cannot be read as date (write dates as YYYY-MM-DD): "
            f"{len(dayfirst)} row(s)") in err, err
    assert "part-00000" not in err and not (tmp_path / "f.parquet").exists()


# ---- validate / report of a bring-your-own run whose tables changed -----------------------------


def test_a_byo_run_is_not_validated_on_tables_that_changed(cli, mlflow_store, tmp_path):
    """A bring-your-own run rebuilds its rows from the two files it recorded. Before, a test file
    rewritten since training was validated as if it were the run's (AUC 0.53 against the 0.80 the
    run measured, exit 1 on a red light that was not the model's); a data-hub run was checked by
    its fingerprint already."""
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    df = pd.DataFrame({"x": x, "z": rng.normal(size=500)})
    df["bad"] = (rng.random(500) < 1 / (1 + np.exp(-(1.5 * x - 1)))).astype(int)
    tr, te = tmp_path / "train.parquet", tmp_path / "test.parquet"
    df.iloc[:350].to_parquet(tr, index=False)
    df.iloc[350:].to_parquet(te, index=False)
    code, out, err = cli("train", "--features", tr, "--test", te, "--target", "bad", "--model", "scorecard",
                         "--experiment", mlflow_store.experiment, "--json")
    assert code == 0, err
    uri = json.loads(out)["model_uri"]
    code, _, err = cli("validate", "--model", uri, "--no-log")
    assert code in (0, 1) and "error:" not in err, err  # the unchanged tables validate
    df.iloc[350:].assign(bad=df["bad"].iloc[350:].sample(frac=1, random_state=1).to_numpy()).to_parquet(te, index=False)
    for command in (["validate", "--model", uri, "--no-log"], ["report", "--model", uri, "--out", tmp_path / "rep", "--no-log"]):
        code, _, err = cli(*command)
        line = _one_error_line(code, err)
        assert f"{tr} and {te} are not the tables the run was trained on (file hash" in line, line
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("entry, what", [("link", "a link to nothing"), ("folder", "not a file")])
def test_a_part_entry_that_is_not_a_file_is_refused(cli, part_hub, tmp_path, entry, what):
    """Before, a broken link or a folder named like a part file was skipped: the build succeeded
    without that part's rows."""
    bad = part_hub / "electricity" / "part-00002.parquet"
    if entry == "link":
        bad.symlink_to(tmp_path / "moved-away.parquet")
    else:
        bad.mkdir()
    code, _, err = cli("features", "--data", part_hub, "--out", tmp_path / "f.parquet", "--partition-firms", 500)
    assert f"{bad}: {what}; every part-*.parquet entry of a table folder is one of the table's part files" in _one_error_line(code, err)
    assert not (tmp_path / "f.parquet").exists()


# ---- two feature builds of the same target ----------------------------------------------------------


def test_a_second_feature_build_of_the_same_target_is_refused_before_any_work(cli, small_hub, tmp_path, monkeypatch):
    """The output's lock is taken when the build starts: the second build is refused at once, with
    no work folder made and no table read (it used to build everything and fail at the rename)."""
    from features import partitions
    from features.files import AtomicOutput

    out = tmp_path / "features.parquet"
    holder = AtomicOutput(out)
    holder.open()  # another build of the same target, running
    try:
        with monkeypatch.context() as m:
            m.setattr(partitions, "_prepare", lambda *a, **k: (_ for _ in ()).throw(AssertionError("the build started work")))
            code, _, err = cli("features", "--data", small_hub, "--out", out, "--partition-firms", "500")
        assert code != 0 and f"another process is writing {out} right now" in err, err
        assert not list(tmp_path.glob("*.work")) and not out.exists()
    finally:
        holder.abort()
    code, _, err = cli("features", "--data", small_hub, "--out", out, "--partition-firms", "500")
    assert code == 0 and out.is_file(), err


# ---- a damaged manifest ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, rule", [("{not json", "not valid JSON"), ('{"parameters": {"end": "last year"}}', "is not a month"),
                                        ("[1, 2]", "a JSON list, not an object")])
def test_a_damaged_manifest_is_refused_not_ignored(cli, small_hub, tmp_path, text, rule):
    """The manifest's snapshot date drives a validation rule (no row after it): a manifest that
    cannot be read is an error naming it, not a silently skipped rule."""
    hub = tmp_path / "hub"
    shutil.copytree(small_hub, hub)
    (hub / "manifest.json").write_text(text)
    code, _, err = cli("features", "--data", hub, "--out", tmp_path / "f.parquet")
    assert code == 2 and f"{hub / 'manifest.json'}: " in err and rule in err and "Traceback" not in err, (code, err)


# ---- a SQLite URI SQLAlchemy cannot parse ------------------------------------------------------------


@pytest.mark.parametrize("uri", ["sqlite:/tmp/mlruns.db", "sqlite://tmp/mlruns.db"])
def test_a_malformed_sqlite_uri_is_one_line(cli, monkeypatch, uri):
    """One slash or two (SQLAlchemy's host form) used to end in exit 70 (ArgumentError)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code, _, err = cli("compare")
    assert code == 2 and "is not a SQLite URI SQLAlchemy can open" in err and "three slashes" in err, (code, err)


# ---- reject inference on a hub without the bank's decisions -----------------------------------------


def test_reject_inference_on_a_hub_without_decisions_says_the_column_is_missing(cli, mlflow_store, small_hub, tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(small_hub, hub)
    apps = pd.read_parquet(hub / "applications.parquet")
    apps.drop(columns=["approved"], errors="ignore").to_parquet(hub / "applications.parquet", index=False)
    code, _, err = cli("train", "--data", hub, "--model", "scorecard", "--reject-inference", "reweight")
    assert code == 2 and "has no approved column" in err, (code, err)


# ---- a mistyped store path under a command that only reads tracked models ----------------------------


@pytest.mark.parametrize("args", [("compare",), ("export", "--model", "models:/riskmodel-scorecard/1", "--out", "m.sql")])
def test_a_command_that_reads_the_store_never_creates_one_at_a_typo(cli, tmp_path, monkeypatch, args):
    db = tmp_path / "typo" / "mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(*args)
    assert code == 2 and f"tracking store {db} does not exist" in err and "typo" in err, (code, err)
    assert not db.exists() and not db.parent.exists()
