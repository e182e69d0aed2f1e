"""MLflow tracking for riskmodel: the only package that imports mlflow.

One module per job:

- :mod:`~riskmodel.tracking.store`: where the store is (``MLFLOW_TRACKING_URI``, else
  ``sqlite:///<cwd>/mlruns.db``), the file lock, retries and WAL mode that let several processes
  share one SQLite store, experiments, and the routing of MLflow's printed lines to logging;
- :mod:`~riskmodel.tracking.runs`: :func:`training_run` and the run handle that logs parameters,
  metrics, tables, figures and the model;
- :mod:`~riskmodel.tracking.registry`: promote, load a model, compare runs, look up a run, attach or
  fetch a run's files;
- :mod:`~riskmodel.tracking.pyfunc`: the pyfunc that wraps a pickled ``CreditModel``, its pinned
  requirements and the synthetic input example.

The names below are the package's face: callers write ``from riskmodel import tracking`` and
``tracking.promote(...)``.
"""

from riskmodel.tracking.pyfunc import (
    MODEL_ARTIFACT,
    MODEL_NAME_IN_RUN,
    CreditModelPyfunc,
    input_example,
    pip_requirements,
    requirement_mismatches,
)
from riskmodel.tracking.registry import (
    CHAMPION,
    COMPARE_METRICS,
    compare,
    download_artifacts,
    find_runs,
    finished_run,
    load_credit_model,
    load_model,
    log_artifacts_to_run,
    log_metrics_to_run,
    promote,
    run_info,
    run_of_model,
)
from riskmodel.tracking.runs import TrainingRun, reap_orphaned_runs, run_status, training_run
from riskmodel.tracking.store import DEFAULT_EXPERIMENT, client, configure, get_or_create_experiment, lock_stats, tracking_uri

__all__ = [
    "CHAMPION",
    "COMPARE_METRICS",
    "DEFAULT_EXPERIMENT",
    "MODEL_ARTIFACT",
    "MODEL_NAME_IN_RUN",
    "CreditModelPyfunc",
    "TrainingRun",
    "client",
    "compare",
    "configure",
    "download_artifacts",
    "find_runs",
    "finished_run",
    "get_or_create_experiment",
    "input_example",
    "load_credit_model",
    "load_model",
    "lock_stats",
    "log_artifacts_to_run",
    "log_metrics_to_run",
    "pip_requirements",
    "promote",
    "reap_orphaned_runs",
    "requirement_mismatches",
    "run_info",
    "run_of_model",
    "run_status",
    "tracking_uri",
    "training_run",
]
