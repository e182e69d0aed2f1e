"""`riskmodel demo` as a user runs it (a subprocess): only our own lines on the terminal, MLflow's in the
log file (and on the terminal with --verbose); the uplift table with paired bootstrap intervals."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from riskmodel.demo import format_uplift

# Lines MLflow and its libraries print or log during a demo (see riskmodel/logs.py).
LIBRARY_LINE = re.compile(r"mlflow|alembic|Successfully registered|Created version|Validating input example|CloudPickle|urllib3", re.I)


def _run(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riskmodel.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo_env(_migrated_store, tmp_path_factory):
    """A private MLflow store (a copy of the migrated one), log directory and working directory."""
    root = tmp_path_factory.mktemp("demo")
    db = root / "mlruns.db"
    shutil.copyfile(_migrated_store, db)
    logs = root / "logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"MLFLOW_TRACKING_URI": f"sqlite:///{db}", "RISKMODEL_LOG_DIR": str(logs), "RISKMODEL_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return root, logs, env


@pytest.mark.slow
def test_demo_prints_only_our_lines_and_logs_mlflow_to_the_file(demo_env):
    root, logs, env = demo_env
    from mlflow.tracking import MlflowClient

    # another team's champion in the same store: the demo must leave it alone (its models are demo-*)
    c = MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    c.create_registered_model("riskmodel-scorecard")
    c.create_model_version("riskmodel-scorecard", source=(root / "elsewhere").as_uri())
    c.set_registered_model_alias("riskmodel-scorecard", "champion", "1")
    proc = _run(["demo", "--firms", "1500", "--out", "data", "--json"], root, env)
    assert proc.returncode == 0, proc.stderr
    assert str(c.get_model_version_by_alias("riskmodel-scorecard", "champion").version) == "1"
    assert [str(v.version) for v in c.search_model_versions("name = 'riskmodel-scorecard'")] == ["1"]
    names = sorted(m.name for m in c.search_registered_models())
    assert names == ["demo-financial_baseline", "demo-gbm_additive", "demo-gbm_monotone", "demo-scorecard", "riskmodel-scorecard"]
    def no_nan(name):
        raise AssertionError(f"{name} in the JSON summary: not strict JSON")

    summary = json.loads(proc.stdout, parse_constant=no_nan)  # stdout is the JSON summary and nothing else
    # stderr: our own warnings only (the public id key, features dropped by a model), no library line
    assert "RISKMODEL_ID_KEY is not set" in proc.stderr
    for line in proc.stderr.splitlines():
        assert re.match(r"WARNING (riskmodel|features)\.", line), line
        assert not LIBRARY_LINE.search(line), line
    files = sorted(logs.glob("riskmodel-*-demo-*.log"))
    assert [str(f) for f in files] == [summary["log_file"]]
    text = files[0].read_text(encoding="utf-8")
    for needle in ("INFO mlflow.eprint: Successfully registered model 'demo-financial_baseline'", "INFO mlflow.pyfunc: Validating input example",
                   "WARNING mlflow.pyfunc: Passing a Python object as `python_model`", "INFO alembic.runtime.migration", "RISKMODEL_ID_KEY is not set"):
        assert needle in text, needle

    u = summary["uplift"]
    assert u["baseline"] == "financial_baseline" and u["n_test"] > 0 and u["bootstrap"]["n_boot"] == 1000
    by_model = {m["model"]: m for m in u["models"]}
    assert set(by_model) == {"financial_baseline", "scorecard", "gbm_monotone", "gbm_additive"}
    assert "uplift" not in by_model["financial_baseline"]
    run_auc = {r["model"]: r["test_auc"] for r in summary["runs"]}
    for name, m in by_model.items():
        assert m["auc"] == pytest.approx(run_auc[name], abs=2e-6)  # loaded back from the registry
        if name != "financial_baseline":
            up = m["uplift"]
            assert up["diff"] == pytest.approx(m["auc"] - by_model["financial_baseline"]["auc"], abs=1e-9)
            assert up["ci95"][0] <= up["ci95"][1] and up["verdict"] in ("beats", "not_shown", "worse")
            assert up["verdict"] == ("beats" if up["ci95"][0] > 0 else "worse" if up["ci95"][1] < 0 else "not_shown")
    assert [m["model"] for m in u["models"] if m["champion"]] == [summary["champion"]["model"]]
    # the default approval policy: declined applications are not scored; through the door (generated data only)
    assert summary["declined"] > 0 and summary["to_score"] == summary["scoring"]["rows_in"]
    t = u["through_the_door"]
    assert t["note"].startswith("generated data only") and t["n"] > u["n_test"] and 0 < t["n_declined"] < t["n"]
    ttd = {m["model"]: m for m in t["models"]}
    assert set(ttd) == set(by_model) and "uplift" not in ttd["financial_baseline"] and "uplift_young" in ttd["gbm_monotone"]
    assert set(summary["seconds_by_step"]) >= {"data", "features", "train scorecard", "compare", "score", "report"}


@pytest.mark.slow
def test_demo_verbose_shows_library_lines_and_the_table(demo_env):
    root, logs, env = demo_env
    proc = _run(["demo", "--firms", "1500", "--out", "data", "--verbose"], root, env)  # --verbose after the command works too
    assert proc.returncode == 0, proc.stderr
    assert "Successfully registered model" in proc.stderr or "Created version" in proc.stderr
    assert re.search(r"^INFO mlflow\.pyfunc: Validating input example", proc.stderr, re.M), proc.stderr
    assert re.search(r"^INFO riskmodel\.logs: riskmodel demo: .*\(log file .*\.log\)$", proc.stderr, re.M)
    out = proc.stdout
    assert re.search(r"^\[1/6\] data: (reusing|generating 1,500 firms)", out, re.M), out
    assert re.search(r"^model +AUC +uplift vs financial_baseline \[95% CI\] +AUC <3y +uplift <3y \[95% CI\]$", out, re.M), out
    for model in ("scorecard", "gbm_monotone", "gbm_additive"):
        assert re.search(rf"^{model}( \*)? +0\.\d{{3}} +[+-]0\.\d{{3}} \[[+-]0\.\d{{3}}, [+-]0\.\d{{3}}\]", out, re.M), out
        assert re.search(rf"^{model} (beats|does NOT beat|cannot be compared with) financial_baseline", out, re.M), out
    assert re.search(r"^log: .*riskmodel-.*-demo-\d+\.log$", out, re.M)
    # library lines go to stderr (with --verbose) and the log file, never into our stdout
    assert not re.search(r"^(DEBUG|INFO|WARNING|ERROR) |Successfully registered|Validating input example", out, re.M), out


def _uplift(verdicts: dict, defaults: int = 300) -> dict:
    models = [{"model": "financial_baseline", "auc": 0.75, "auc_young": 0.70, "champion": False}]
    for name, (diff, lo, hi, n) in verdicts.items():
        v = "no_data" if n == 0 else "beats" if lo > 0 else "worse" if hi < 0 else "not_shown"
        u = {"diff": diff, "ci95": [lo, hi], "n_boot": n, "verdict": v}
        models.append({"model": name, "auc": 0.75 + diff, "auc_young": 0.70, "champion": name == "gbm_monotone", "uplift": u,
                       "uplift_young": dict(u)})
    return {"baseline": "financial_baseline", "cut_date": "2024-05-20", "n_test": 9000, "test_defaults": defaults, "n_test_young": 3000,
            "test_defaults_young": 90, "oracle_auc": 0.88, "bootstrap": {"n_boot": 1000, "seed": 0}, "models": models}


def test_format_uplift_says_plainly_which_model_does_not_beat_the_baseline():
    text = format_uplift(_uplift({"gbm_monotone": (0.06, 0.04, 0.08, 1000), "scorecard": (0.01, -0.005, 0.03, 1000), "gbm_additive": (-0.03, -0.05, -0.01, 1000)}))
    assert "gbm_monotone beats financial_baseline overall and for firms under three years (both intervals above 0)." in text
    assert "scorecard does NOT beat financial_baseline overall: its interval [-0.005, +0.030] includes 0." in text
    assert "gbm_additive does NOT beat financial_baseline for firms under three years: its interval [-0.050, -0.010] lies below 0: it is worse." in text
    assert re.search(r"^gbm_monotone \* +0\.810 +\+0\.060 \[\+0\.040, \+0\.080\]", text, re.M), text
    assert re.search(r"^financial_baseline +0\.750 +\(baseline\)", text, re.M)
    assert "note: only" not in text
    assert "Through the door" not in text
    door = _uplift({"gbm_monotone": (0.06, 0.04, 0.08, 1000)})
    door["through_the_door"] = {"note": "generated data only: x", "n": 12000, "n_declined": 5000, "defaults": 380, "n_young": 3500, "defaults_young": 100,
                                "models": [dict(m) for m in door["models"]]}
    text = format_uplift(door)
    assert "Through the door (generated data only: x): all 12,000 applicants of the test window, 5,000 of them declined by the bank" in text
    assert "gbm_monotone beats financial_baseline overall and for first applications of firms under three years through the door (both intervals above 0)." in text
    few = format_uplift(_uplift({"gbm_monotone": (0.02, None, None, 0)}, defaults=12))
    assert "gbm_monotone cannot be compared with financial_baseline overall" in few
    assert "note: only 12 defaults in the test window" in few
