"""The ``riskmodel`` command. Each command parses options, calls one library function and prints.

User errors (bad parameters, invalid files, unusable output paths) print a one-line message to stderr
and exit with their code; :func:`main` is the one place that maps exceptions to exit codes. An
exception riskmodel did not expect is a bug: one line names the command and the log file that holds
its traceback (exit 70). Every command that writes checks its output paths first
(:func:`features.files.check_outputs`) and writes through :class:`features.files.AtomicOutput`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from riskmodel.demo import DEFAULT_FIRMS
from riskmodel.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="技术流 credit risk scoring for sci-tech SMEs.")


@app.callback()
def _run_options(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", help="also show INFO lines and other libraries' log lines (MLflow, ...) on stderr; every run writes them to its log file (RISKMODEL_LOG_DIR, else ~/.local/state/riskmodel/logs)"),
) -> None:
    """Process settings for this run: OpenMP wait policy (riskmodel.config), logging (riskmodel.logs)."""
    from riskmodel.config import openmp_defaults
    from riskmodel.logs import setup_cli

    openmp_defaults()  # before LightGBM loads
    setup_cli(ctx.invoked_subcommand or "riskmodel", verbose=verbose)


def _strict(obj):
    """``obj`` with every non-finite float (NaN, inf; numpy's too) replaced by None: JSON has no NaN."""
    import math

    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, float) or type(obj).__module__ == "numpy" and hasattr(obj, "dtype") and obj.dtype.kind == "f":
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def _echo_json(obj) -> None:
    """Print ``obj`` as strict JSON (RFC 8259): NaN and infinities become null, never bare NaN."""
    typer.echo(json.dumps(_strict(obj), ensure_ascii=False, indent=2, default=str, allow_nan=False))


def _date_option(value: Optional[str], flag: str) -> Optional[str]:
    """A YYYY-MM-DD option checked before any work: the same text back, or a one-line UserError."""
    import datetime

    if value is None:
        return None
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{flag} {value!r} is not a date; use YYYY-MM-DD (e.g. 2025-06-30)") from None
    if len(value) != 10:
        raise UserError(f"{flag} {value!r} is not a date; use YYYY-MM-DD (e.g. 2025-06-30)")
    return value


def _after_snapshot(data: Path, as_of: Optional[str], flag: str = "--as-of") -> None:
    """Warn when a date lies after the hub's snapshot: windows reaching past it hold no data."""
    if as_of is None:
        return
    import pandas as pd

    from features.tables import dataset_end

    end = dataset_end(data)
    if end is not None and pd.Timestamp(as_of) > end + pd.Timedelta(days=31):
        typer.echo(f"warning: {flag} {as_of} is after the snapshot of {data} ({end.date()}): signal windows reaching past it see no data", err=True)


# ---- generate (data/synthetic) ---------------------------------------------------------------


@app.command("generate")
def generate_cmd(
    firms: int = typer.Option(..., "--firms", help="number of firms (1 to 10,000,000)"),
    out: Path = typer.Option(..., "--out", help="output directory (new, empty, or a previous generated dataset)"),
    seed: int = typer.Option(0, "--seed", help="random seed; the same seed and options give byte-identical files"),
    start: str = typer.Option("2021-01", "--start", help="first month of the data window, YYYY-MM"),
    end: str = typer.Option("2025-12", "--end", help="last month of the data window (the snapshot), YYYY-MM"),
    default_rate: float = typer.Option(0.03, "--default-rate", help="default rate of all applications whose 12-month window closed (through the door, as if all were granted), 0.01 to 0.08"),
    approval_policy: str = typer.Option("traditional", "--approval-policy", help="the bank's approval policy: traditional (collateral and statements), tech_aware (adds certificates and invention patents) or none (every application granted); only approved applications get outcomes"),
    layout: str = typer.Option("auto", "--layout", help="files: <table>.parquet; parts: <table>/part-NNNNN.parquet per 50,000 firms; auto: parts above 50,000 firms"),
) -> None:
    """Generate a synthetic data hub: 13 source tables, manifest.json and truth/truth.parquet."""
    from synthetic import GeneratorParams, generate

    params = GeneratorParams(firms=firms, seed=seed, start=start, end=end, default_rate=default_rate, approval_policy=approval_policy)
    manifest = generate(params, out, layout=layout)
    _echo_json(
        {
            "out": str(out),
            "firms": params.firms,
            "rows": manifest["rows"],
            "labelled_applications": manifest["labelled_applications"],
            "default_rate_observed": manifest["default_rate_observed"],
            "approval_policy": params.approval_policy,
            "approval_rate": manifest["approval"]["rates"]["all"]["rate"],
        }
    )


# ---- features, catalog (features/) -----------------------------------------------------------


@app.command()
def features(
    data: Path = typer.Option(..., "--data", help="data-hub directory: <table>.parquet files or <table>/ folders of part-*.parquet files"),
    out: Path = typer.Option(..., "--out", help="feature matrix to write (Parquet)"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="YYYY-MM-DD: one row per firm as of that date instead of one per application"),
    errors: str = typer.Option("raise", "--errors", help="raise: stop at the first invalid table; reject: drop invalid rows, log them with counts"),
    workers: int = typer.Option(1, "--workers", help="partitions built at once, one process each (2 uses both cores of a 2-core machine)"),
    partition_firms: Optional[int] = typer.Option(None, "--partition-firms", help="firms per partition (default 50,000; 10,000 with --engine spark, whose tasks hold a partition in the JVM too) when the hub is not in firm parts already; memory follows it"),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="folder for the validated partitions (default: beside --out); removed at the end; with spark, on storage every executor sees"),
    engine: str = typer.Option("pandas", "--engine", help="pandas: this machine; spark: the same signals on Spark (SPARK_MASTER, default local[2]; docs/scale.md)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Build the point-in-time feature matrix from validated source tables, one partition of firms at a time."""
    import os

    from features.files import check_outputs
    from features.partitions import PARTITION_FIRMS, build_hub
    from features.tables import hub_paths

    if errors not in ("raise", "reject"):
        raise UserError(f"--errors must be 'raise' or 'reject', got {errors!r}")
    as_of = _date_option(as_of, "--as-of")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if engine not in ("pandas", "spark"):
        raise UserError(f"--engine must be 'pandas' or 'spark', got {engine!r}")
    if engine == "spark" and workers != 1:
        raise UserError("--workers applies to --engine pandas; Spark runs as many tasks as its cores (SPARK_MASTER)")
    if partition_firms is not None and partition_firms < 1:
        raise UserError(f"--partition-firms must be at least 1, got {partition_firms}")
    # before any work: never over a file of the hub (a table it has or may have), a Parquet name
    check_outputs({"--out": out, "--work-dir": work_dir}, hub_paths(data), suffixes={"--out": (".parquet",)}, directories=("--work-dir",))
    _after_snapshot(data, as_of)
    show = not as_json and sys.stderr.isatty() and not os.environ.get("CI")
    if engine == "spark":
        from riskmodel.sparkfeatures import build_hub_spark

        from riskmodel.sparkfeatures import SPARK_PARTITION_FIRMS

        result = build_hub_spark(data, out, errors=errors, as_of=as_of, work_dir=work_dir, partition_firms=partition_firms or SPARK_PARTITION_FIRMS)
    else:
        with _Bars(show) as bars:
            result = build_hub(data, out, errors=errors, as_of=as_of, workers=workers, partition_firms=partition_firms or PARTITION_FIRMS,
                               work_dir=work_dir, progress=bars.update)
    loaded = result.report.to_dict()
    summary = {
        "out": str(out),
        "engine": engine,
        "rows": result.rows,
        "features": result.features,
        "as_of": as_of,
        "partitions": result.partitions,
        "layout": result.layout,
        "workers": result.workers,
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "missing_tables": loaded["missing_tables"],
        "rows_rejected": loaded["rows_rejected"],
        "warnings": len(loaded["warnings"]),
    }
    if as_json:
        _echo_json(summary)
        return
    typer.echo(f"wrote {out}: {summary['rows']} rows x {summary['features']} features "
               f"({result.partitions} partition{'s' if result.partitions != 1 else ''}, {result.layout})")
    rejected = sum(summary["rows_rejected"].values())
    typer.echo(f"load: {len(loaded['rows_read'])} tables, {rejected} rows rejected, {summary['warnings']} warnings"
               + (f", missing tables: {', '.join(summary['missing_tables'])}" if summary["missing_tables"] else ""))


class _Bars:
    """One tqdm bar per step of a partitioned feature build (on a terminal only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.step = None

    def update(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if step != self.step:
            self.close()
            from tqdm import tqdm

            unit = "partitions" if step != "validate" else "files"
            self.bar, self.step = tqdm(total=total, desc=step, unit=unit, file=sys.stderr), step
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@app.command()
def catalog(
    fmt: Optional[str] = typer.Option(None, "--format", help="md | json | csv (default: the suffix of --out, else md)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write to this file instead of printing; its suffix (.md, .json, .csv) is the format (md regenerates docs/features.md)"),
) -> None:
    """The feature catalog: every signal and data product with its metadata."""
    from features.catalog import catalog as feature_catalog
    from features.catalog import catalog_markdown, catalog_records
    from features.files import check_outputs, output_format, write_text

    formats = ("md", "json", "csv")
    if fmt is not None and fmt not in formats:
        raise UserError(f"--format must be md, json or csv, got {fmt!r}")
    if out is not None:
        fmt = fmt or output_format(out, [f".{f}" for f in formats])
        check_outputs({"--out": out}, suffixes={"--out": (f".{fmt}",)})
    fmt = fmt or "md"
    if fmt == "md":
        text = catalog_markdown()
    elif fmt == "json":
        text = json.dumps(catalog_records(), ensure_ascii=False, indent=2)
    else:
        text = feature_catalog().to_csv(index=False)
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        write_text(out, text if text.endswith("\n") else text + "\n")
        typer.echo(f"wrote {out}")


# ---- train, compare, promote (riskmodel/models, evaluation, tracking) -------------------------


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, "--data", help="data-hub directory of <table>.parquet files (with outcomes)"),
    model: Optional[str] = typer.Option(None, "--model", help="financial_baseline | scorecard | gbm_monotone | gbm_additive"),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment (default: riskmodel; riskmodel-byo for --features)"),
    cut: Optional[str] = typer.Option(None, "--cut", help="out-of-time cut YYYY-MM-DD: earlier applications train, later test (default: last ~30% test)"),
    features: Optional[Path] = typer.Option(None, "--features", help="bring your own: training table (Parquet)"),
    test: Optional[Path] = typer.Option(None, "--test", help="bring your own: test table with the same columns"),
    target: Optional[str] = typer.Option(None, "--target", help="bring your own: 0/1 target column (1 = default)"),
    directions: Optional[Path] = typer.Option(None, "--directions", help="bring your own: TOML/YAML of feature = -1|0|1"),
    features_file: Optional[Path] = typer.Option(None, "--features-file", help="with --data: a prebuilt feature matrix (riskmodel features --out) instead of the cache"),
    keep_column: Optional[list[str]] = typer.Option(None, "--keep-column", help="bring your own: use this column as a feature although it looks like an identifier or a date (repeatable)"),
    name: Optional[str] = typer.Option(None, "--name", help="registered model name (default riskmodel-<model>)"),
    seed: int = typer.Option(42, "--seed", help="random seed of the estimator"),
    reject_inference: Optional[str] = typer.Option(None, "--reject-inference", help="with --data: also learn from the applications the bank declined before the cut: reweight | augment | self_label (docs/reject_inference.md)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Train a model, evaluate it out of time, log it to MLflow and register it."""
    import signal

    from riskmodel import train as training

    def _terminated(signum, frame):  # `kill PID`: end the MLflow run as KILLED, not leave it RUNNING
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminated)
    cut = _date_option(cut, "--cut")
    if data is None and cut is not None:
        raise UserError("--cut applies to --data only; your own tables arrive already split into --features and --test")
    if data is not None:
        if model is None:
            raise UserError("--model is required with --data; choose one of: financial_baseline, scorecard, gbm_monotone, gbm_additive")
        if keep_column:
            raise UserError("--keep-column applies to --features/--test only; with --data the features come from the feature catalog")
        if directions is not None:
            raise UserError("--directions applies to --features/--test only; with --data the directions come from the feature catalog")
        summary = training.train(data, model, experiment, features=features, test=test, target=target, cut=cut, features_file=features_file, registered_name=name, seed=seed, reject_inference=reject_inference)
    else:
        summary = training.train(None, model, experiment, features=features, test=test, target=target, directions_file=directions,
                                 keep_columns=keep_column or (), registered_name=name, seed=seed, reject_inference=reject_inference)
    if as_json:
        _echo_json(summary)
        return
    m = summary["metrics"]
    typer.echo(f"run {summary['run_id']} ({summary['model']}) in experiment {summary['experiment']}")
    typer.echo(f"registered {summary['registered_name']} version {summary['registered_version']}  ->  {summary['model_uri']}")
    typer.echo(f"train {summary['n_train']} rows, test {summary['n_test']} rows, {summary['n_features']} features" + (f", cut {summary['cut_date']}" if summary.get("cut_date") else ""))
    line = "  ".join(f"{k.replace('test_', '')} {m[k]:.4f}" for k in ("test_auc", "test_gini", "test_ks", "test_brier", "test_ece") if k in m)
    typer.echo(f"test: {line}" + (f"  (oracle AUC {summary['oracle_auc']:.4f})" if summary.get("oracle_auc") is not None else ""))
    if "features_cache" in summary:
        typer.echo(f"features: {summary['features_cache']['status']} ({summary['features_cache']['path']})")
    if summary.get("reject_inference"):
        ri = summary["reject_inference"]
        typer.echo(f"reject inference: {ri['method']} with {ri['n_rejected']:,} declined applications beside {ri['n_accepted']:,} granted loans")
    ttd = summary.get("through_the_door")
    if ttd:
        typer.echo(f"through the door ({ttd['note']}):")
        for r in ttd["populations"]:
            if r["n"]:
                auc = "-" if r["auc"] is None else f"{r['auc']:.4f}"
                typer.echo(f"  {r['population']:<12} {r['n']:>7,} applications, default rate {r['default_rate']:.4f}, mean PD {r['mean_pd']:.4f}, AUC {auc}")
    for seg in summary.get("low_auc_segments", []):
        typer.echo(f"warning: segment {seg['segment']}={seg['value']} ({seg['count']} rows) has AUC {seg['auc']:.3f} < 0.65")
    for col, info in (summary.get("columns") or {}).items():  # bring your own: every column not used as is
        if info["use"] == "excluded":
            typer.echo(f"column {col}: not used: {info['reason']}")
        elif info.get("kind") == "numeric_text" or info.get("coerced_to_missing"):
            lost = info.get("coerced_to_missing")
            extra = f"; {lost['train'] + lost['test']} value(s) not numbers, read as missing" if lost else ""
            typer.echo(f"column {col}: {info.get('note', info['kind'])}{extra}")


@app.command()
def compare(
    experiment: str = typer.Option("riskmodel", "--experiment", help="MLflow experiment to compare"),
    as_json: bool = typer.Option(False, "--json", help="print the table as JSON records"),
) -> None:
    """One table of the experiment's runs, sorted by out-of-time AUC, the champion marked with *."""
    from riskmodel import tracking

    table = tracking.compare(experiment)
    if as_json:
        records = table.assign(start_time=table["start_time"].astype(str)).astype(object)
        _echo_json(records.where(records.notna(), None).to_dict("records"))  # NaN -> null: strict JSON
        return
    if table.empty:
        typer.echo(f"experiment {experiment!r} has no runs yet")
        return
    view = table.assign(
        champion=table["champion"].map({True: "*", False: ""}),
        registered=[f"{n}:{v}" if n else "" for n, v in zip(table["registered_name"], table["registered_version"])],
        run=table["run_id"].str[:8],
    )
    cols = ["champion", "model", "registered", "test_auc", "test_auc_startup", "test_ks", "test_brier", "test_ece", "oracle_auc", "status", "run"]
    typer.echo(view[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}", na_rep="-"))


@app.command()
def promote(
    name: str = typer.Option(..., "--name", help="registered model name, e.g. riskmodel-gbm_monotone"),
    version: str = typer.Option(..., "--version", help="model version number"),
    alias: str = typer.Option("champion", "--alias", help="alias to set"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Point an alias (default champion) at a registered model version."""
    from riskmodel import tracking

    result = tracking.promote(name, version, alias)
    if as_json:
        _echo_json(result)
    else:
        typer.echo(f"{result['name']} version {result['version']} is now @{result['alias']} ({result['uri']})")


# ---- score, explain (riskmodel/scoring) --------------------------------------------------------


@app.command("score")
def score_cmd(
    model: str = typer.Option(..., "--model", help="MLflow model URI: models:/NAME@champion, models:/NAME/3, runs:/RUN_ID/model"),
    out: Path = typer.Option(..., "--out", help="scores file to write; the suffix decides the format: .parquet or .csv (same columns)"),
    features: Optional[Path] = typer.Option(None, "--features", help="feature file (Parquet or CSV) to score"),
    data: Optional[Path] = typer.Option(None, "--data", help="data directory: build features point-in-time, then score"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="with --data: score every firm as of this date (YYYY-MM-DD) instead of its applications"),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="rejected rows with reasons, .parquet or .csv (default: OUT stem + .rejects + OUT suffix)"),
    chunk_size: int = typer.Option(100_000, "--chunk-size", help="rows per chunk; memory stays flat with input size"),
    engine: str = typer.Option("pandas", "--engine", help="pandas (streaming, one process), duckdb (the model's exported SQL in DuckDB, same checks and outputs) or spark (local mode here; a cluster via SPARK_MASTER)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Score feature rows: PD, score, grade and three reason codes; every row scored or rejected."""
    import os

    as_of = _date_option(as_of, "--as-of")
    if data is not None and features is None:
        _after_snapshot(data, as_of)

    if engine == "spark":
        from riskmodel.spark import score_spark

        if features is None:
            raise UserError("--engine spark needs --features FILE (build them first with `riskmodel features`)")
        summary = score_spark(model, features, out, rejects=rejects)
    elif engine in ("pandas", "duckdb"):
        from riskmodel.scoring import score

        progress = not as_json and sys.stderr.isatty() and not os.environ.get("CI")
        summary = score(model, out, features=features, data=data, as_of=as_of, rejects=rejects, chunk_size=chunk_size, progress=progress, engine=engine)
    else:
        raise UserError(f"unknown --engine {engine!r}; use pandas, duckdb or spark")
    if as_json:
        _echo_json(summary.to_dict())
        return
    typer.echo(f"model {summary.model_name} version {summary.model_version} ({summary.model_uri})")
    typer.echo(f"rows in {summary.rows_in:,}  scored {summary.scored:,}  rejected {summary.rejected:,}")
    for code, k in summary.rejects_by_reason.items():
        typer.echo(f"  rejected {code}: {k:,}")
    typer.echo(f"scores  -> {summary.output}")
    typer.echo(f"rejects -> {summary.rejects}")


@app.command("explain")
def explain_cmd(
    model: str = typer.Option(..., "--model", help="MLflow model URI: models:/NAME@champion, models:/NAME/3, runs:/RUN_ID/model"),
    features: Path = typer.Option(..., "--features", help="feature file (Parquet or CSV) holding the application"),
    application_id: str = typer.Option(..., "--id", help="application_id of the row to explain"),
    top: int = typer.Option(0, "--top", help="show only the N features with the largest |contribution| (0: all)"),
    as_json: bool = typer.Option(False, "--json", help="print the breakdown as JSON"),
) -> None:
    """One application's score broken down by signal: value, log-odds contribution, points, names."""
    from riskmodel import explain, tracking
    from riskmodel.scoring import find_application, validated_row

    frame = find_application(features, application_id)  # read by the rules of riskmodel.usertables
    credit_model, name, version = tracking.load_credit_model(model)
    row = validated_row(credit_model, frame, f"application_id {application_id!r} in {features}")
    header, table = explain.explain_row(credit_model, row)
    feature_points = float(table["points"].sum())
    if top > 0:
        table = table.reindex(table["contribution"].abs().sort_values(ascending=False, kind="mergesort").index[:top])
    if as_json:
        _echo_json({"application_id": application_id, "model": name, "version": version, **header, "features": table.to_dict("records")})
        return
    typer.echo(f"application {application_id}  model {name} version {version}")
    typer.echo(f"PD {header['pd']:.4%}  score {header['score']:.1f}  grade {header['grade']}")
    typer.echo(f"score {header['score']:.1f} = base points {header['base_points']:.1f} + feature points {feature_points:+.1f}  (positive points: safer)")
    for i, (z, e) in enumerate(zip(header["reasons_zh"], header["reasons_en"]), 1):
        typer.echo(f"reason {i}: {z} / {e}")
    typer.echo(explain.format_breakdown(table))


# ---- report (riskmodel/report) ---------------------------------------------------------------


@app.command("report")
def report_cmd(
    run: Optional[str] = typer.Option(None, "--run", help="MLflow run id of a training run"),
    model: Optional[str] = typer.Option(None, "--model", help="or a model URI (models:/NAME@champion): report on the run behind it"),
    out: Path = typer.Option(..., "--out", help="directory to write index.html to"),
    data: Optional[Path] = typer.Option(None, "--data", help="the run's data-hub directory, if it moved since training"),
    no_log: bool = typer.Option(False, "--no-log", help="do not log the report to the run"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """A self-contained HTML report of a training run for reviewers (also logged to the run)."""
    from riskmodel import report, tracking

    if (run is None) == (model is None):
        raise UserError("give exactly one of --run RUN_ID or --model URI")
    run_id = run if run is not None else tracking.run_of_model(model)
    summary = report.write_report(run_id, out, data=data, log_to_run=not no_log)
    if as_json:
        _echo_json(summary)
        return
    typer.echo(f"report of run {run_id} ({summary['model']}): {summary['path']} ({summary['bytes'] / 1e6:.1f} MB)")
    if summary.get("artifact_uri"):
        typer.echo(f"logged to the run: {summary['artifact_uri']}/index.html")
    if summary["contradictions"]:
        typer.echo(f"warning: fitted direction contradicts the catalog for {', '.join(summary['contradictions'])}")
    if summary["low_auc_segments"]:
        typer.echo(f"warning: {summary['low_auc_segments']} segment(s) with AUC < 0.65 (see the segments section)")
    if summary.get("validation_verdict"):
        typer.echo(f"validation on the out-of-time rows: {summary['validation_verdict'].upper()} (see the validation section; `riskmodel validate` exits by it)")


# ---- validate, export (riskmodel/model_validation, riskmodel/sql) -----------------------------


@app.command("validate")
def validate_cmd(
    run: Optional[str] = typer.Option(None, "--run", help="MLflow run id of a training run"),
    model: Optional[str] = typer.Option(None, "--model", help="or a model URI (models:/NAME@champion): validate the model behind it"),
    features: Optional[Path] = typer.Option(None, "--features", help="a later batch: feature file (Parquet or CSV); default: the run's out-of-time rows"),
    outcomes: Optional[Path] = typer.Option(None, "--outcomes", help="with --features: outcomes (application_id and the 0/1 target), joined on application_id"),
    previous: Optional[Path] = typer.Option(None, "--previous", help="earlier scores of the same firms (riskmodel score --out): grade migration by firm_id"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="baseline model URI for the paired DeLong test (default: the experiment's financial_baseline run on the same data)"),
    data: Optional[Path] = typer.Option(None, "--data", help="the run's data-hub directory, if it moved since training"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory for validation.json and validation.html"),
    no_log: bool = typer.Option(False, "--no-log", help="do not log metrics and files to the run"),
    as_json: bool = typer.Option(False, "--json", help="print the whole result as JSON"),
) -> None:
    """A model validator's battery (discrimination, calibration per grade, low-default bounds, stability) with traffic lights; exit 1 on red."""
    from riskmodel.model_validation import format_summary, validate

    mv, where = validate(run, model, features=features, outcomes=outcomes, previous=previous, baseline=baseline, data=data, out=out, log_to_run=not no_log)
    if as_json:
        _echo_json({**mv.to_dict(), "outputs": where})
    else:
        typer.echo(format_summary(mv))
        for what in ("json", "html"):
            if what in where:
                typer.echo(f"{what} -> {where[what]}")
        if "artifact_uri" in where:
            typer.echo(f"logged to run {mv.model['run_id']}: metrics validation_{'oot' if mv.tag == 'oot' else 'batch'}_*, files {where['artifact_uri']}")
    if mv.verdict == "red":
        raise SystemExit(1)  # as monitor: SystemExit, not typer.Exit (see monitor_cmd)


@app.command("export")
def export_cmd(
    model: str = typer.Option(..., "--model", help="MLflow model URI: models:/NAME@champion, models:/NAME/3, runs:/RUN_ID/model"),
    fmt: str = typer.Option("sql", "--format", help="sql: one SELECT that scores a feature table in a warehouse (scorecard, gbm_additive, financial_baseline)"),
    dialect: str = typer.Option("duckdb", "--dialect", help="duckdb | spark (Spark SQL; Hive) | ansi (other engines)"),
    table: str = typer.Option("features", "--table", help="the feature table the SELECT reads (db.table quoted part by part)"),
    keys: str = typer.Option("application_id,firm_id,application_date", "--keys", help="comma-separated key columns carried to the output (leave out those the table lacks)"),
    out: Path = typer.Option(..., "--out", help="the .sql file to write"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Export a model as SQL: PD, score, grade and reason codes with their texts, computed in the warehouse."""
    from riskmodel.sql import export_model

    if fmt != "sql":
        raise UserError(f"--format {fmt!r} is not supported; the one export format is sql")
    key_columns = [k.strip() for k in keys.split(",") if k.strip()]
    s = export_model(model, out, dialect=dialect, table=table, key_columns=key_columns)
    if as_json:
        _echo_json(s)
        return
    typer.echo(f"wrote {s['out']}: {s['kind']} {s['model_name']} version {s['model_version']} as {s['dialect']} SQL ({s['lines']:,} lines)")
    typer.echo(f"reads {len(s['reads'])} feature column(s) of {s['table']}; returns {', '.join(s['key_columns'])}, pd, score, grade, reason codes and their texts")


# ---- monitor, stress, npl-tolerance --------------------------------------------------------------


def _matrix_text(labels, counts) -> str:
    import pandas as pd

    m = pd.DataFrame(counts, index=labels, columns=labels)
    m.index.name = "from \\ to"
    keep = [g for g in labels if m.loc[g].sum() or m[g].sum()]
    return m.loc[keep, keep].to_string()


@app.command("monitor")
def monitor_cmd(
    model: str = typer.Option(..., "--model", help="MLflow model URI: models:/NAME@champion, models:/NAME/3, runs:/RUN_ID/model"),
    features: Path = typer.Option(..., "--features", help="new batch of feature rows (Parquet or CSV, as written by `riskmodel features`)"),
    previous: Optional[Path] = typer.Option(None, "--previous", help="earlier scores of the same firms (riskmodel score --out): grade migration by firm_id"),
    no_log: bool = typer.Option(False, "--no-log", help="do not record a monitoring run in MLflow"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """PSI of score and features against the training population, missing-rate drift, grade migration; exit 1 on 'act'."""
    from riskmodel.monitoring import monitor

    r = monitor(model, features, previous, log_run=not no_log)
    if as_json:
        _echo_json(r)
    else:
        m = r["model"]
        typer.echo(f"model {m['name']} version {m['version']} ({m['uri']}); batch {r['batch']['path']}: {r['batch']['rows']:,} rows, mean PD {r['batch']['mean_pd']:.4f} (training {r['batch']['training_mean_pd'] or float('nan'):.4f})")
        if r["batch"]["rows_rejected"]:
            typer.echo(f"left out {r['batch']['rows_rejected']:,} of {r['batch']['rows_read']:,} rows that scoring would reject: {r['batch']['rejects_by_reason']}")
        if not r["sample"]["verdict"]:
            typer.echo(f"note: {r['sample']['note']}")
        typer.echo(f"score PSI {r['score']['psi']:.4f} [{r['score']['band']}]   grade PSI {r['grades']['psi']:.4f} [{r['grades']['band']}]")
        c = r["counts"]
        typer.echo(f"features: {c['stable']} stable, {c['watch']} watch, {c['act']} act")
        for f in r["features"]:
            if f["band"] in ("watch", "act"):
                typer.echo(f"  {f['band']:<6} {f['feature']:<34} PSI {f['psi']:.3f}  ({f['family']})")
        typer.echo("missing-rate drift by source family (training -> now):")
        for f in r["families"]:
            typer.echo(f"  {f['band']:<6} {f['family']:<14} {f['ref_missing']:6.1%} -> {f['cur_missing']:6.1%}  PSI {f['psi']:.3f}")
        mig = r.get("migration")
        if mig:
            typer.echo(f"grade migration of {mig['matched_firms']:,} firms scored before: same {mig['share_same']:.1%}, down {mig['share_downgraded']:.1%}, up {mig['share_upgraded']:.1%}, 2+ grades {mig['share_moved_2plus']:.1%}")
            typer.echo(_matrix_text(mig["labels"], mig["counts"]))
        if r.get("run_id"):
            typer.echo(f"monitoring run {r['run_id']}")
        typer.echo(f"status: {r['status'].upper()}" + (f" ({', '.join(r['act'][:8])})" if r["act"] else ""))
    if r["status"] == "act":
        # SystemExit, not typer.Exit: with standalone_mode=False click returns typer.Exit's code
        # from app() instead of raising it, and main() would exit 0.
        raise SystemExit(1)


@app.command("stress")
def stress_cmd(
    model: str = typer.Option(..., "--model", help="MLflow model URI: models:/NAME@champion, models:/NAME/3, runs:/RUN_ID/model"),
    data: Path = typer.Option(..., "--data", help="data-hub directory of <table>.parquet files"),
    scenario: Path = typer.Option(..., "--scenario", help="scenario TOML (or the name of a shipped one: power_cut_manufacturing, sector_downturn, certification_lapse)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write per-loan results (Parquet: base and stressed PD, grade, EL, segments)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Shock source tables by a scenario, rebuild features point-in-time, rescore: PD, grade and EL shift by segment."""
    from features.files import atomic_output, check_outputs
    from features.tables import hub_paths
    from riskmodel.stress import run_stress

    check_outputs({"--out": out}, [scenario, *hub_paths(data)], suffixes={"--out": (".parquet",)})
    r = run_stress(model, data, scenario)
    if out is not None:
        with atomic_output(out) as tmp:
            r.rows.rename(columns={"ead": "amount", "pd_stress": "pd"}).to_parquet(tmp, index=False)
    if as_json:
        d = r.to_dict()
        if out is not None:
            d["out"] = str(out)
        _echo_json(d)
        return
    s = r.summary
    typer.echo(f"scenario {r.scenario['name']}: {r.scenario['description']}  (as of {r.as_of}, LGD {s['lgd']:.0%})")
    for sh in r.shocks:
        clipped = f", {sh['values_clipped']:,} values clipped to the schema range" if sh.get("values_clipped") else ""
        typer.echo(f"  shock {sh['shock']}: {sh['rows_changed']:,} rows, {sh['firms_affected']:,} firms{clipped}")
    typer.echo(f"book: {s['n']:,} loans, EAD {s['ead']:,.0f} (CNY 10k); model {r.model['name']} version {r.model['version']}")
    typer.echo(f"mean PD {s['mean_pd_base']:.4f} -> {s['mean_pd_stress']:.4f}; PD up for {s['share_pd_up']:.1%}, down for {s['share_pd_down']:.1%}; downgraded {s['share_downgraded']:.1%}")
    pct = f" ({s['el_change_pct']:+.1f}%)" if s["el_change_pct"] is not None else ""
    typer.echo(f"expected loss {s['el_base']:,.1f} -> {s['el_stress']:,.1f} (CNY 10k){pct}")
    view = r.segments.assign(pd_base=r.segments["pd_base"].map("{:.4f}".format), pd_stress=r.segments["pd_stress"].map("{:.4f}".format),
                             downgraded=r.segments["downgraded"].map("{:.1%}".format), el_change_pct=r.segments["el_change_pct"].map(lambda v: "-" if v != v else f"{v:+.1f}%"))
    typer.echo(view[["segment", "value", "n", "pd_base", "pd_stress", "downgraded", "el_change", "el_change_pct"]].to_string(index=False, float_format=lambda x: f"{x:,.1f}"))
    if len(r.features):
        typer.echo("features moved by the shock (rows changed; adverse / favourable by catalog direction):")
        for f in r.features.itertuples():
            typer.echo(f"  {f.feature:<34} {f.changed:6,}  adverse {f.adverse:,}  favourable {f.favourable:,}")
    if out is not None:
        typer.echo(f"per-loan results -> {out}")


@app.command("npl-tolerance")
def npl_tolerance_cmd(
    scores: Path = typer.Option(..., "--scores", help="scores (Parquet/CSV) with pd; region, industry and exposure, or --data to join them"),
    config: Path = typer.Option(..., "--config", help="tolerance config TOML (example: riskmodel/scenarios/npl_tolerance.toml)"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory for npl_tolerance.parquet/.csv/.png"),
    data: Optional[Path] = typer.Option(None, "--data", help="data hub to join region/industry (firms) and exposure (applications.amount) by id"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Expected NPL (exposure-weighted PD) by region and industry against a capped, differentiated tolerance band."""
    from riskmodel.npl import run_tolerance

    r = run_tolerance(scores, config, out, data)
    if as_json:
        _echo_json(r)
        return
    import pandas as pd

    t = pd.DataFrame(r["table"])
    typer.echo(f"overall NPL ratio {r['overall_npl_ratio']:.2%}; uplift cap {min(r['max_uplift'], 0.03) * 100:.1f}pp; {r['formula']}")
    view = t[t["level"].isin(["overall", "region", "industry"])].copy()
    for c in ("expected_npl", "band", "uplift", "headroom"):
        view[c] = (view[c] * 100).map("{:.2f}".format)
    view["flag"] = view["flag"].map({True: "ABOVE BAND", False: ""})
    typer.echo(view.rename(columns={"expected_npl": "expected_%", "band": "band_%", "uplift": "uplift_pp", "headroom": "headroom_pp"}).to_string(index=False, float_format=lambda x: f"{x:,.0f}"))
    typer.echo(f"regions above band: {', '.join(r['flagged']) or 'none'}; region x industry cells above band: {len(r['flagged_cells'])}")
    for k, v in (r.get("outputs") or {}).items():
        typer.echo(f"{k} -> {v}")


# ---- federated-train ------------------------------------------------------------------------------


@app.command("federated-train")
def federated_train_cmd(
    data: Path = typer.Option(..., "--data", help="data-hub directory of <table>.parquet files (with outcomes)"),
    key_bits: int = typer.Option(2048, "--key-bits", help="Paillier key size: 2048 (default), 3072, 4096; 1024 or 512 only for trials"),
    mode: str = typer.Option("exact", "--mode", help="exact (arbiter applies the sigmoid) or taylor (Hardy et al. approximation)"),
    max_epochs: int = typer.Option(15, "--max-epochs", help="passes over the training rows (L-BFGS-B evaluations)"),
    batch_size: int = typer.Option(1000, "--batch-size", help="rows per message batch"),
    experiment: str = typer.Option("riskmodel-federated", "--experiment", help="MLflow experiment"),
    plaintext: bool = typer.Option(False, "--plaintext", help="run the same protocol without encryption (a dry run; nothing private)"),
    no_log: bool = typer.Option(False, "--no-log", help="do not log the run to MLflow"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Train the scorecard federated between the bank (labels, financials) and the hub (other signals)."""
    from riskmodel.federated.run import federated_train

    if mode not in ("exact", "taylor"):
        raise UserError(f"--mode must be 'exact' or 'taylor', got {mode!r}")
    if max_epochs < 1 or batch_size < 1:
        raise UserError("--max-epochs and --batch-size must be at least 1")
    s = federated_train(data, key_bits=key_bits, mode=mode, max_epochs=max_epochs, batch_size=batch_size,
                        experiment=experiment, log_mlflow=not no_log, plaintext=plaintext)
    if as_json:
        _echo_json(s)
        return
    typer.echo(f"federated AUC {s['federated_auc']:.4f}  centralized AUC {s['centralized_auc']:.4f}  gap {s['auc_gap']:+.4f}")
    typer.echo(f"{s['n_train']} aligned training rows, {s['features']['bank']} bank + {s['features']['hub']} hub features, "
               f"{s['epochs']} epochs, {s['rounds']} messages, {s['bytes_total'] / 1e6:.1f} MB, wall {s['wall_seconds']:.1f} s "
               f"({s['seconds_per_epoch']:.1f} s per epoch, {'plaintext' if plaintext else str(key_bits) + '-bit keys'})")
    for party, d in s["per_party"].items():
        typer.echo(f"  {party:8s} sent {d['messages_sent']:5d} messages {d['bytes_sent'] / 1e6:8.2f} MB, received {d['messages_received']:5d} {d['bytes_received'] / 1e6:8.2f} MB")
    if s.get("run_id"):
        typer.echo(f"MLflow run {s['run_id']}, model {s.get('registered_name')} v{s.get('registered_version')}")


# ---- doctor --------------------------------------------------------------------------------------


@app.command("doctor")
def doctor_cmd(
    data: Optional[list[Path]] = typer.Option(None, "--data", help="a data-hub directory whose feature cache to check (repeatable)"),
    stale_hours: float = typer.Option(24.0, "--stale-hours", help="a RUNNING run older than this that no process on this machine owns is marked FAILED"),
    dry_run: bool = typer.Option(False, "--dry-run", help="change nothing; show what would be repaired"),
    as_json: bool = typer.Option(False, "--json", help="print the findings as JSON"),
) -> None:
    """Check the tracking store, runs left RUNNING, aliases and feature caches; repair what is safe, say what was done."""
    from riskmodel.doctor import run_doctor

    if stale_hours <= 0:
        raise UserError(f"--stale-hours must be positive, got {stale_hours:g}")
    r = run_doctor(data or (), stale_hours=stale_hours, dry_run=dry_run)
    if as_json:
        _echo_json(r)
    else:
        typer.echo(f"store {r['store']}" + ("  (dry run: nothing changed)" if dry_run else ""))
        for f in r["findings"]:
            typer.echo(f"  {f['status']:<12} {f['check']:<8} {f['detail']}")
        typer.echo(f"status: {r['status'].upper()}")
    if r["status"] == "problem":
        raise SystemExit(1)


# ---- demo --------------------------------------------------------------------------------------


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("data/synthetic/demo"), "--out", help="data directory (generated if missing)"),
    firms: int = typer.Option(DEFAULT_FIRMS, "--firms", help="firms to generate (the default puts a few hundred defaults in the out-of-time test)"),
    seed: int = typer.Option(0, "--seed", help="generator seed"),
    experiment: str = typer.Option("demo", "--experiment", help="MLflow experiment for the demo runs"),
    report_dir: Path = typer.Option(Path("reports/demo"), "--report-dir", help="where the champion's report goes"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """End to end: generate, build features, train every model, compare with the baseline, promote, score, report."""
    from riskmodel.demo import format_uplift, run_demo
    from riskmodel.logs import current_log_file

    echo = (lambda _m: None) if as_json else typer.echo
    summary = run_demo(out, firms=firms, seed=seed, experiment=experiment, report_dir=report_dir, echo=echo)
    summary["log_file"] = str(current_log_file() or "")
    if as_json:
        _echo_json(summary)
        return
    typer.echo("")
    typer.echo(format_uplift(summary["uplift"]))
    typer.echo("")
    typer.echo(f"champion: {summary['champion']['uri']}  scores: {summary['scoring']['output']}")
    typer.echo(f"report: {summary['report']}")
    steps = ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds_by_step"].items())
    typer.echo(f"done in {summary['seconds']} s ({steps}); browse runs with: mlflow ui --backend-store-uri sqlite:///mlruns.db")
    if summary["log_file"]:
        typer.echo(f"log: {summary['log_file']}")


def _global_options_first(args: list[str]) -> list[str]:
    """``riskmodel demo --verbose`` works like ``riskmodel --verbose demo``: --verbose belongs to the app."""
    if "--verbose" not in args[1:]:
        return args
    return ["--verbose", *(a for a in args if a != "--verbose")]


#: exit code of an unexpected exception (a bug in riskmodel): sysexits' EX_SOFTWARE
EXIT_BUG = 70
#: exit code after Ctrl-C (128 + SIGINT)
EXIT_ABORTED = 130
#: file-system refusals of a path the user named (an input that is missing, a folder given for a
#: file, no permission): the user's to fix, reported as ``<path>: <reason>``
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def _command(args: list[str]) -> str:
    """The command of a command line, for messages: ``riskmodel score`` (``riskmodel`` when none is given)."""
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    return " ".join(["riskmodel", *[a for a in args if a in names][:1]])


def _exit(message: str, code: int, exc_info=None) -> None:
    """Print the one-line error, record it (and a traceback, when given) in the run's log file, exit with ``code``."""
    import logging

    from riskmodel.logs import file_only

    typer.echo(f"error: {message}", err=True)
    file_only(logging.ERROR, f"error: {message} (exit code {code})", exc_info=exc_info)
    sys.exit(code)


def _bug(command: str, exc: BaseException) -> None:
    """The last-resort guard: an exception riskmodel did not expect is a bug. One line naming the
    command and the log file; the traceback goes to the log file (to stderr when there is none)."""
    import logging
    import traceback

    from riskmodel.logs import current_log_file, file_only

    file_only(logging.CRITICAL, f"unexpected error (a bug in riskmodel) in {command}", exc_info=(type(exc), exc, exc.__traceback__))
    log_file = current_log_file()
    what = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    where = f"the traceback is in {log_file}" if log_file else "the traceback follows"
    typer.echo(f"error: {command} failed unexpectedly ({what}); this is a bug in riskmodel, not in your input: {where}; please report it with that file", err=True)
    if log_file is None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.exit(EXIT_BUG)


#: the commands that may create a tracking store; every other one needs the store to exist already
CREATES_STORE = ("train", "demo", "federated-train")


def _store_rule(command: str | None):
    """:func:`riskmodel.tracking.store.existing_store_only` for every command but those in
    :data:`CREATES_STORE` (a command that never opens the store is not affected)."""
    import contextlib

    if command in CREATES_STORE or command is None:
        return contextlib.nullcontext()
    from riskmodel.tracking.store import existing_store_only

    return existing_store_only()


def main() -> None:
    """Entry point: run the Typer app; every exception ends here, in one place.

    * :class:`~features.errors.UserError` and its family (``TableError``, ``ScoringError``,
      ``OutputError``, ...): one ``error:`` line, exit with the error's ``exit_code``.
    * Click/Typer usage errors (unknown option, bad value): one line, their ``exit_code`` (2).
    * A missing file, a folder for a file, no permission: ``<path>: <reason>``, exit 2.
    * Ctrl-C: ``aborted``, exit 130.
    * Anything else is a bug: one line naming the command and the log file holding the traceback,
      exit :data:`EXIT_BUG`.
    """
    import click

    from riskmodel.logs import close_cli

    args = _global_options_first(sys.argv[1:])
    command = next((a for a in args if not a.startswith("-")), None)
    try:
        # returns the code of a typer.Exit raised by a command; Typer turns Ctrl-C into code 130
        with _store_rule(command):
            rc = app(args=args, standalone_mode=False)
        if rc == EXIT_ABORTED:
            typer.echo("aborted", err=True)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except UserError as exc:
        _exit(str(exc), exc.exit_code)
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(EXIT_ABORTED)
    except (click.exceptions.ClickException, typer.TyperException) as exc:
        # typer >= 0.2x vendors click (typer._click): its usage errors derive from typer.TyperException
        if not hasattr(exc, "format_message"):
            _bug(_command(args), exc)
        message = " ".join(str(exc.format_message()).split())
        _exit(f"{message} (see `riskmodel --help`)", getattr(exc, "exit_code", 2) or 2)
    except _PATH_ERRORS as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _exit(f"{where}{exc.strerror or exc}", 2, exc_info=sys.exc_info())
    except OSError as exc:  # a full or read-only disk under a write no writer translated: still the user's to fix
        import errno

        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
            _bug(_command(args), exc)
        from features.files import disk_error

        _exit(str(disk_error(exc, exc.filename or "an output file")), 2, exc_info=sys.exc_info())
    except Exception as exc:  # noqa: BLE001 - the last-resort guard
        _bug(_command(args), exc)
    finally:
        close_cli()


if __name__ == "__main__":
    main()
