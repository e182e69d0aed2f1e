"""Signal modules, one per source family. Each module registers its signals with
``features.registry.signal`` when imported; ``import_all()`` imports them in catalog order."""

from __future__ import annotations

import importlib

FAMILY_MODULES: tuple[str, ...] = (
    "innovation",
    "certification",
    "energy",
    "workforce",
    "trade",
    "bills",
    "bids",
    "talent",
    "finance",
    "firm",
    "coverage",
)


def import_all() -> None:
    """Import every family module (registration happens on import)."""
    for name in FAMILY_MODULES:
        importlib.import_module(f"features.signals.{name}")
