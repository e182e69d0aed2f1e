"""features/ is the bottom layer: it imports nothing from synthetic or riskmodel, and its registry
imports no feature module (loading every signal and product is ``features.signals.load_all``'s job)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


FEATURES = Path(__file__).resolve().parents[2] / "features"


def _imports(path: Path) -> set[str]:
    """Top-level package names a module imports, anywhere in it (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_features_imports_nothing_above_it():
    files = sorted(FEATURES.rglob("*.py"))
    assert len(files) >= 20
    upward = {f"{p.relative_to(FEATURES)}: {m}" for p in files for m in _imports(p) if m.split(".")[0] in ("riskmodel", "synthetic")}
    assert not upward, f"features/ must not import riskmodel or synthetic: {sorted(upward)}"


def test_the_registry_imports_no_feature_module():
    assert {m for m in _imports(FEATURES / "registry.py") if m.split(".")[0] == "features"} == set()


def test_importing_the_registry_alone_registers_nothing():
    code = (
        "import sys, features.registry as r\n"
        "assert r.registry() == {}, sorted(r.registry())\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('features.products', 'features.signals')))\n"
        "assert not loaded, loaded\n"
        "from features.signals import load_all\n"
        "reg = load_all()\n"
        "print(len(reg), sum(s.kind == 'product' for s in reg.values()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=FEATURES.parent)
    assert out.returncode == 0, out.stderr
    n, products = map(int, out.stdout.split())
    assert n >= 40 and products == 5


def test_the_families_are_defined_once():
    from features.registry import FAMILIES, SIGNAL_FAMILIES
    from features.signals import load_all

    assert FAMILIES == (*SIGNAL_FAMILIES, "product")
    modules = sorted(p.stem for p in (FEATURES / "signals").glob("*.py") if p.stem != "__init__")
    assert sorted(SIGNAL_FAMILIES) == modules  # one module per signal family
    reg = load_all()
    for s in reg.values():
        assert s.module == ("features.products" if s.kind == "product" else f"features.signals.{s.family}"), s.name
    # catalog order: signals by family, then products, whatever was imported first
    order = [FAMILIES.index(s.family) for s in reg.values()]
    assert order == sorted(order)


def test_one_error_family():
    import riskmodel.errors
    from features.errors import UserError
    from features.privacy import ReleaseError
    from features.tables import TableError, Violation

    assert riskmodel.errors.UserError is UserError
    assert issubclass(riskmodel.errors.ScoringError, UserError) and riskmodel.errors.ScoringError.exit_code == 1
    assert issubclass(ReleaseError, UserError) and ReleaseError.exit_code == 2
    err = TableError([Violation("firms", "firms.parquet", "region", "unknown category", 2, (3, 4))])
    assert isinstance(err, UserError) and err.exit_code == 2
    assert err.violations[0].rows == (3, 4) and "firms.parquet: column 'region': unknown category" in str(err)
