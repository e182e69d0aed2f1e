"""The generator's place in the layers: ``synthetic`` imports ``features`` and nothing of ``riskmodel``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "synthetic"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (inside functions too); relative imports resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(f"synthetic.{node.module or ''}".rstrip(".") if node.level else node.module)
    return found


def test_no_module_of_synthetic_imports_riskmodel():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 7, files
    seen = {f.relative_to(PACKAGE).as_posix(): _imports(f) for f in files}
    bad = {f: sorted(m for m in mods if m.split(".")[0] == "riskmodel") for f, mods in seen.items()}
    assert not any(bad.values()), {f: m for f, m in bad.items() if m}
    # the scan sees imports: the package does import features
    assert any(m.split(".")[0] == "features" for mods in seen.values() for m in mods)


def test_importing_synthetic_loads_nothing_of_riskmodel():
    """Also through ``features``: a fresh interpreter that imports the generator has no riskmodel module."""
    code = "import sys, synthetic; print(sorted(m for m in sys.modules if m.split('.')[0] == 'riskmodel'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
