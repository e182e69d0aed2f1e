"""Process-wide settings read from the environment, in one place (never at import time)."""

from __future__ import annotations

import os


def threads() -> int:
    """Threads for LightGBM / OpenMP code: ``RISKMODEL_THREADS`` (default 2, the machine's cores).

    Oversubscribing the two cores slows LightGBM about tenfold, so every estimator passes this
    explicitly instead of relying on OpenMP defaults.
    """
    raw = os.environ.get("RISKMODEL_THREADS", "2")
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"RISKMODEL_THREADS must be a positive integer, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"RISKMODEL_THREADS must be a positive integer, got {raw!r}")
    return n


def openmp_defaults() -> None:
    """Idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless already set).

    Call before LightGBM (or another OpenMP library) is loaded: the runtime reads the variable once.
    With the runtime's default wait, LightGBM's many short parallel regions keep waiting for a thread
    that another process has pushed off its core: ``benchmarks/bench_openmp_wait.py`` measured a
    ``gbm_monotone`` fit of the demo hub at 25.7 s with two busy processes on the 2-core machine,
    against 2.8 s passive (0.8 s and 1.6 s with none; the same trees either way). The
    ``riskmodel`` command calls this at start."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
