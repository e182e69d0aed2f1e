"""One rule for every output path, one place for every exit code (issue 17, classes 1 and 2).

Every command that writes checks its outputs before any work (features.files.check_outputs): an
output is never an input of the same run (a feature file, a file of the hub it reads, present or
not), never another output of the same run, and its suffix decides its format. Every file is written
through features.files.AtomicOutput: a second process writing the same target is refused, and
permissions follow the umask. riskmodel.cli.main maps every exception to an exit code in one place;
anything unexpected becomes one line naming the command and the log file that holds the traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from features.tables import hub_paths

NPL_CONFIG = Path(__file__).resolve().parents[2] / "riskmodel" / "scenarios" / "npl_tolerance.toml"
NO_MODEL = "models:/no-such-model@champion"  # reaching the model would say 'cannot load model'


def _one_error_line(code: int, err: str, expected_code: int = 2) -> str:
    lines = [ln for ln in err.splitlines() if not ln.startswith(("WARNING", "INFO"))]
    assert code == expected_code and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


@pytest.fixture
def hub(champion, tmp_path) -> Path:
    """A copy of the champion's hub without its cache and without the optional bills table."""
    out = tmp_path / "hub"
    shutil.copytree(champion.hub, out, ignore=shutil.ignore_patterns("cache", "bills.parquet"))
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- an output is never an input ----------------------------------------------------------------


def test_hub_paths_name_every_table_manifest_and_truth(hub):
    paths = {str(p.relative_to(hub)) for p in hub_paths(hub)}
    assert {"firms.parquet", "applications.parquet", "bills.parquet", "manifest.json", "truth", "truth/truth.parquet"} <= paths
    assert not (hub / "bills.parquet").exists()  # reserved although absent


@pytest.mark.parametrize("name", ["firms.parquet", "bills.parquet", "truth/truth.parquet"])
def test_features_out_cannot_overwrite_a_file_of_the_hub(cli, hub, name):
    before = _snapshot(hub)
    t0 = time.perf_counter()
    code, _, err = cli("features", "--data", hub, "--out", hub / name)
    line = _one_error_line(code, err)
    assert f"--out {hub / name} is also an input of this run" in line, line
    assert time.perf_counter() - t0 < 5 and _snapshot(hub) == before


def test_score_out_cannot_be_its_input_nor_its_rejects(cli, use_champion_store, tmp_path):
    src = tmp_path / "in.parquet"
    use_champion_store.matrix.head(30).to_parquet(src, index=False)
    before = src.read_bytes()
    code, _, err = cli("score", "--model", use_champion_store.uri, "--features", src, "--out", src)
    assert "--out " + str(src) + " is also an input of this run" in _one_error_line(code, err)
    link = tmp_path / "link.parquet"
    link.symlink_to(src)
    code, _, err = cli("score", "--model", use_champion_store.uri, "--features", link, "--out", src)
    assert "is also an input of this run" in _one_error_line(code, err)
    code, _, err = cli("score", "--model", use_champion_store.uri, "--features", src, "--out", tmp_path / "s.parquet", "--rejects", tmp_path / "s.parquet")
    assert f"--out and --rejects both name {tmp_path / 's.parquet'}" in _one_error_line(code, err)
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "link.parquet"]


def test_score_with_data_cannot_overwrite_the_hub(cli, use_champion_store, hub):
    before = _snapshot(hub)
    for flag in ("--out", "--rejects"):
        args = ["--out", hub / "scores.parquet", "--rejects", hub / "applications.parquet"] if flag == "--rejects" else ["--out", hub / "applications.parquet"]
        code, _, err = cli("score", "--model", use_champion_store.uri, "--data", hub, *args)
        assert f"{flag} {hub / 'applications.parquet'} is also an input of this run" in _one_error_line(code, err)
    assert _snapshot(hub) == before


def test_stress_out_cannot_overwrite_the_hub(cli, use_champion_store, hub):
    before = _snapshot(hub)
    code, _, err = cli("stress", "--model", NO_MODEL, "--data", hub, "--scenario", "sector_downturn", "--out", hub / "applications.parquet")
    assert f"--out {hub / 'applications.parquet'} is also an input of this run" in _one_error_line(code, err)
    assert _snapshot(hub) == before


def test_npl_tolerance_out_cannot_overwrite_its_scores(cli, tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    scores = res / "npl_tolerance.parquet"  # the scores file sits where the table would be written
    pd.DataFrame({"pd": [0.01], "region": ["central"], "industry": ["ai"], "amount": [1.0]}).to_parquet(scores)
    before = scores.read_bytes()
    code, _, err = cli("npl-tolerance", "--scores", scores, "--config", NPL_CONFIG, "--out", res)
    assert f"--out (parquet) {scores} is also an input of this run" in _one_error_line(code, err)
    assert scores.read_bytes() == before and sorted(p.name for p in res.iterdir()) == ["npl_tolerance.parquet"]


def test_demo_checks_its_outputs_before_generating(cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, _, err = cli("demo", "--firms", "50", "--out", tmp_path / "data", "--report-dir", tmp_path / "afile")
    assert f"--report-dir {tmp_path / 'afile'} is an existing file; give a folder path" in _one_error_line(code, err)
    code, _, err = cli("demo", "--firms", "50", "--out", tmp_path / "data", "--report-dir", tmp_path / "data")
    assert "--out and --report-dir both name" in _one_error_line(code, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing generated


def test_report_out_must_be_a_folder(cli, tmp_path):
    (tmp_path / "index.html").write_text("x")
    code, _, err = cli("report", "--run", "0123456789abcdef", "--out", tmp_path / "index.html")
    assert f"--out {tmp_path / 'index.html'} is an existing file; give a folder path" in _one_error_line(code, err)


# ---- the suffix decides the format --------------------------------------------------------------


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d, c: ["features", "--data", c.hub, "--out", d / "f.csv"], "--out {d}/f.csv: suffix '.csv'; the suffix decides the format, use .parquet"),
        (lambda d, c: ["score", "--model", NO_MODEL, "--features", d / "in.parquet", "--out", d / "s.json"], "--out {d}/s.json: suffix '.json'; the suffix decides the format, use .csv or .parquet"),
        (lambda d, c: ["score", "--model", NO_MODEL, "--features", d / "in.parquet", "--out", d / "s.csv", "--rejects", d / "r.txt"], "--rejects {d}/r.txt: suffix '.txt'"),
        (lambda d, c: ["score", "--engine", "spark", "--model", NO_MODEL, "--features", d / "in.parquet", "--out", d / "s.csv"], "--out {d}/s.csv: suffix '.csv'; the suffix decides the format, use .parquet"),
        (lambda d, c: ["stress", "--model", NO_MODEL, "--data", c.hub, "--scenario", "sector_downturn", "--out", d / "s.csv"], "--out {d}/s.csv: suffix '.csv'; the suffix decides the format, use .parquet"),
        (lambda d, c: ["catalog", "--format", "md", "--out", d / "c.json"], "--out {d}/c.json: suffix '.json'; the suffix decides the format, use .md"),
        (lambda d, c: ["catalog", "--out", d / "c.xlsx"], "--out {d}/c.xlsx: suffix '.xlsx'; the suffix decides the format, use .csv or .json or .md"),
    ],
    ids=["features-csv", "score-json", "score-rejects-txt", "spark-csv", "stress-csv", "catalog-md-as-json", "catalog-xlsx"],
)
def test_a_suffix_that_does_not_match_the_format_is_refused(cli, champion, tmp_path, make, fragment):
    champion.matrix.head(5).to_parquet(tmp_path / "in.parquet")
    code, _, err = cli(*make(tmp_path, champion))
    assert fragment.format(d=tmp_path) in _one_error_line(code, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_catalog_format_follows_the_suffix(cli, tmp_path):
    code, out, err = cli("catalog", "--out", tmp_path / "new" / "catalog.json")
    assert code == 0, err
    records = json.loads((tmp_path / "new" / "catalog.json").read_text(encoding="utf-8"))
    assert records and "name" in records[0]


def test_score_writes_csv_when_asked_for_csv(cli, use_champion_store, tmp_path):
    m = use_champion_store.matrix.head(40).copy()
    m.loc[m.index[0], "application_id"] = None  # one reject
    m.to_parquet(tmp_path / "in.parquet", index=False)
    code, out, err = cli("score", "--model", use_champion_store.uri, "--features", tmp_path / "in.parquet", "--out", tmp_path / "out" / "scores.csv", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["output"] == str(tmp_path / "out" / "scores.csv") and s["rejects"] == str(tmp_path / "out" / "scores.rejects.csv")
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    rejects = pd.read_csv(tmp_path / "out" / "scores.rejects.csv")
    assert len(scores) == s["scored"] == 39 and len(rejects) == s["rejected"] == 1
    assert (tmp_path / "out" / "scores.csv").read_bytes()[:1] == b'"'  # CSV text, not Parquet bytes ("PAR1")
    assert rejects["reject_code"].tolist() == ["MISSING_ID"]


# ---- one writer at a time; permissions ----------------------------------------------------------


PAUSED_SCORE = textwrap.dedent(
    """
    import sys
    from riskmodel import tracking
    real = tracking.load_credit_model
    def paused(uri):  # the first run holds its outputs while it waits here, as a slow model load would
        print("loading", flush=True)
        sys.stdin.readline()
        return real(uri)
    tracking.load_credit_model = paused
    from riskmodel.cli import main
    sys.argv = ["riskmodel", *sys.argv[1:]]
    main()
    """
)


def test_a_second_score_run_on_the_same_output_is_refused(cli, use_champion_store, tmp_path):
    champ = use_champion_store
    champ.matrix.head(200).to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "scores.parquet"
    args = ["score", "--model", champ.uri, "--features", str(tmp_path / "in.parquet"), "--out", str(out), "--json"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": champ.store, "RISKMODEL_THREADS": "1", "CI": "1"}
    first = subprocess.Popen([sys.executable, "-c", PAUSED_SCORE, *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "loading", first.stderr.read()
        code, _, err = cli(*args)  # the second run, while the first holds the output
        line = _one_error_line(code, err)
        assert f"another process is writing {out} right now" in line and "choose another output path" in line, line
        code, _, err = cli(*args[:-3], "--out", str(tmp_path / "s2.parquet"), "--rejects", str(tmp_path / "scores.rejects.parquet"))
        assert "another process is writing" in _one_error_line(code, err)  # its rejects file is held too
        stdout, stderr = first.communicate("\n", timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    s = json.loads(stdout)
    assert s["scored"] + s["rejected"] == 200 and len(pd.read_parquet(out)) == s["scored"]  # the first run's result, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "scores.parquet", "scores.rejects.parquet"]


def test_outputs_follow_the_umask(tmp_path):
    """A fresh process with umask 027: the score and rejects files 0640, the report and npl folders' files too."""
    code = textwrap.dedent(
        f"""
        import os, pandas as pd
        os.umask(0o027)
        from riskmodel.npl import run_tolerance
        pd.DataFrame({{"pd": [0.01, 0.02], "region": ["central", "west_northeast"], "industry": ["ai", "ai"], "amount": [1.0, 2.0]}}).to_parquet({str(tmp_path / "s.parquet")!r})
        run_tolerance({str(tmp_path / "s.parquet")!r}, {str(NPL_CONFIG)!r}, {str(tmp_path / "npl")!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "RISKMODEL_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "npl").iterdir()}
    assert modes == {"npl_tolerance.parquet": 0o640, "npl_tolerance.csv": 0o640, "npl_tolerance.png": 0o640}
    assert (tmp_path / "npl").stat().st_mode & 0o777 == 0o750


# ---- one place maps exceptions to exit codes ----------------------------------------------------


def _raising(exc: BaseException):
    def run(*args, **kwargs):
        raise exc

    return run


@pytest.mark.parametrize(
    "exc, code, fragment",
    [
        ("UserError", 2, r"^error: bad option$"),
        ("ScoringError", 1, r"^error: bad batch$"),
        ("OutputError", 2, r"^error: bad output$"),
        ("TableError", 2, r"^error: source table validation failed:"),
        ("PermissionError", 2, r"^error: /x/y.parquet: Permission denied$"),
        ("FileNotFoundError", 2, r"^error: /x/nope: No such file or directory$"),
        ("KeyboardInterrupt", 130, r"^aborted$"),
        ("ZeroDivisionError", 70, r"^error: riskmodel compare failed unexpectedly \(ZeroDivisionError: division by zero\); this is a bug in riskmodel"),
    ],
)
def test_every_exception_maps_to_its_exit_code_in_one_place(cli, monkeypatch, exc, code, fragment):
    import re

    from features.errors import OutputError, UserError
    from features.tables import TableError, Violation
    from riskmodel import tracking
    from riskmodel.errors import ScoringError

    made = {
        "UserError": UserError("bad option"),
        "ScoringError": ScoringError("bad batch"),
        "OutputError": OutputError("bad output"),
        "TableError": TableError([Violation("firms", "firms.parquet", "region", "required column is missing", 1)]),
        "PermissionError": PermissionError(13, "Permission denied", "/x/y.parquet"),
        "FileNotFoundError": FileNotFoundError(2, "No such file or directory", "/x/nope"),
        "KeyboardInterrupt": KeyboardInterrupt(),
        "ZeroDivisionError": ZeroDivisionError("division by zero"),
    }[exc]
    monkeypatch.setattr(tracking, "compare", _raising(made))
    got, out, err = cli("compare", "--experiment", "x")
    assert got == code and "Traceback" not in err, (got, err)
    assert re.search(fragment, err.strip().splitlines()[0]), err


def test_usage_errors_exit_2_with_one_line(cli):
    code, _, err = cli("score", "--no-such-option")
    assert code == 2 and err.count("\n") == 1 and "No such option: --no-such-option (see `riskmodel --help`)" in err, err


def test_an_unexpected_exception_in_the_console_script_is_one_line_and_a_log_file(tmp_path):
    """Through a real process: no traceback (Typer's box included) on the terminal, the traceback in the log file."""
    code = textwrap.dedent(
        """
        import sys
        import features.catalog
        def broken(*a, **k):
            raise KeyError("a bug")
        features.catalog.catalog_markdown = broken
        from riskmodel.cli import main
        sys.argv = ["riskmodel", "catalog"]
        main()
        """
    )
    env = {**os.environ, "RISKMODEL_LOG_DIR": str(tmp_path / "logs"), "RISKMODEL_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    (log_file,) = (tmp_path / "logs").glob("riskmodel-*-catalog-*.log")
    assert proc.returncode == 70 and proc.stdout == "", (proc.returncode, proc.stderr)
    assert proc.stderr == (f"error: riskmodel catalog failed unexpectedly (KeyError: 'a bug'); this is a bug in riskmodel, not in your input: "
                           f"the traceback is in {log_file}; please report it with that file\n")
    text = log_file.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "KeyError: 'a bug'" in text and "in broken" in text
