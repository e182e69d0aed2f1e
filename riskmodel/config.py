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
