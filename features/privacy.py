"""De-identification: pseudonymous ids by keyed HMAC, and release of columns by sensitivity grade.

The hub never hands out a raw registration id. Every table it serves carries ``firm_id``, the keyed
HMAC-SHA256 of the registration id under the hub's secret key, so two parties holding the same key
(the hub and, for entity alignment, a bank in a federated run) can join on it, and nobody without the
key can invert it or test a guessed id against it.

Grades follow ``features.tables.GRADES``: L1 public, L2 internal, L3 confidential, L4 restricted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from features.errors import UserError

log = logging.getLogger(__name__)

KEY_ENV = "RISKMODEL_ID_KEY"
DEMO_KEY = "riskmodel-demo-key-INSECURE-do-not-use-in-production"
GRADE_ORDER = {"L1": 1, "L2": 2, "L3": 3, "L4": 4}
ID_LENGTH = 16  # hex characters of the HMAC kept in a pseudonymous id (64 bits)


class ReleaseError(UserError):
    """A frame holds columns above the grade the recipient may receive (exit code 2)."""


def id_key(key: str | bytes | None = None) -> bytes:
    """The HMAC key: ``key`` if given, else ``RISKMODEL_ID_KEY``, else the demo key (with a warning)."""
    if key is None:
        key = os.environ.get(KEY_ENV)
    if key is None or key == "":
        log.warning("%s is not set: using the built-in demo key, which is public and INSECURE", KEY_ENV)
        key = DEMO_KEY
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def is_demo_key(key: str | bytes | None = None) -> bool:
    """True when the key in use is the public demo key."""
    k = key if key is not None else os.environ.get(KEY_ENV) or DEMO_KEY
    return (k.decode() if isinstance(k, bytes) else k) == DEMO_KEY


def pseudonymize(ids: Iterable[str] | pd.Series, key: str | bytes | None = None, prefix: str = "F") -> pd.Series:
    """Keyed HMAC-SHA256 of each id, shortened to ``ID_LENGTH`` hex characters and prefixed.

    Deterministic for a given key; a different key gives unrelated ids.
    """
    k = id_key(key)
    values = ids.astype(str).tolist() if isinstance(ids, pd.Series) else [str(i) for i in ids]
    out = [prefix + hmac.new(k, v.encode("utf-8"), hashlib.sha256).hexdigest()[:ID_LENGTH] for v in values]
    index = ids.index if isinstance(ids, pd.Series) else None
    return pd.Series(out, index=index, dtype="string")


def column_grades(frame_columns: Iterable[str], grades: Mapping[str, str]) -> dict[str, str]:
    """Grade of each column in ``frame_columns``; columns without a declared grade are treated as L4."""
    return {c: grades.get(c, "L4") for c in frame_columns}


def release(frame: pd.DataFrame, max_grade: str, grades: Mapping[str, str]) -> pd.DataFrame:
    """Return ``frame`` if every column is at or below ``max_grade``; otherwise refuse.

    ``grades`` maps column name to grade (``features.catalog.column_grades()`` gives it for feature
    matrices). An undeclared column counts as L4: what is not declared is not released.
    """
    if max_grade not in GRADE_ORDER:
        raise ValueError(f"unknown grade {max_grade!r}; use one of {', '.join(GRADE_ORDER)}")
    limit = GRADE_ORDER[max_grade]
    graded = column_grades(frame.columns, grades)
    refused = {c: g for c, g in graded.items() if GRADE_ORDER[g] > limit}
    if refused:
        listed = ", ".join(f"{c} ({g})" for c, g in sorted(refused.items()))
        raise ReleaseError(
            f"release refused: {len(refused)} column(s) above grade {max_grade}: {listed}; "
            f"drop them or release at a higher grade under an agreement"
        )
    return frame


def fake_registration_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic 18-character unified social credit codes (structure only; not valid real codes)."""
    alphabet = np.array(list("0123456789ABCDEFGHJKLMNPQRTUWXY"))
    region = rng.integers(110000, 660000, size=n)
    body = alphabet[rng.integers(0, len(alphabet), size=(n, 9))]
    check = alphabet[rng.integers(0, len(alphabet), size=n)]
    return np.array(["91" + f"{r:06d}" + "".join(b) + c for r, b, c in zip(region, body, check)], dtype=object)
