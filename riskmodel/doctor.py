"""``riskmodel doctor``: check the tracking store, its runs and aliases, and the feature caches of
the hubs named; repair what can be repaired safely and say what was done.

Checks (:mod:`riskmodel.tracking.health`, :func:`riskmodel.dataset.cache_health`):

* the store opens, is intact, migrated and in WAL mode (WAL is switched on);
* runs left RUNNING by a process that is gone, or older than ``stale_hours``, end FAILED with the
  tag ``riskmodel.ended_by``;
* aliases point at versions that exist (an alias to a missing version is deleted) whose model files
  are present (reported);
* each ``--data`` hub's feature cache: stale or corrupt entries and temporary files of killed
  writers are removed.

``dry_run`` changes nothing and reports what would be done. The status is ``ok`` (nothing found),
``repaired`` (everything found was repaired) or ``problem`` (something needs a person: the finding
says what to do; ``riskmodel doctor`` exits 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: hours after which a RUNNING run that no process on this machine owns counts as abandoned
STALE_HOURS = 24.0


def run_doctor(data: Sequence[str | Path] = (), *, stale_hours: float = STALE_HOURS, dry_run: bool = False) -> dict:
    """Run every check; returns ``{"status", "store", "findings": [...]}`` (JSON-able)."""
    import contextlib

    from riskmodel import dataset
    from riskmodel.tracking import health, tracking_uri
    from riskmodel.tracking.store import without_housekeeping

    with without_housekeeping() if dry_run else contextlib.nullcontext():
        findings = health.check_store(dry_run)
        if not health.store_absent() and not any(f.status == "problem" for f in findings):
            findings += health.check_runs(stale_hours, dry_run)
            findings += health.check_aliases(dry_run)
    for d in data:
        entries = dataset.cache_health(d, dry_run=dry_run)
        if not entries:
            findings.append(health.Finding("cache", "ok", f"{d}: no stale, corrupt or orphaned file in the feature cache"))
        for e in entries:
            status = "would_repair" if dry_run else ("repaired" if e["action"] == "removed" else "problem")
            findings.append(health.Finding("cache", status, f"{e['path']}: {e['problem']}; {e['action']}"))
    statuses = {f.status for f in findings}
    status = "problem" if "problem" in statuses else ("would_repair" if "would_repair" in statuses else ("repaired" if "repaired" in statuses else "ok"))
    return {"status": status, "store": tracking_uri(), "dry_run": dry_run, "stale_hours": stale_hours, "findings": [f.to_dict() for f in findings]}
