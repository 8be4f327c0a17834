"""The import-linter contract (pyproject.toml) holds, and fails on a wrong-way import.

Each case copies the three packages and pyproject.toml to a temporary folder, adds one
import that breaks a rule, and runs `lint-imports` there: it must fail and name the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for package in ("harness", "faults", "attacks"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


def test_the_tree_keeps_the_contract(tree: Path) -> None:
    proc = lint_imports(tree)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout


@pytest.mark.parametrize(("module", "bad_import", "contract"), [
    ("harness/core/units.py", "import harness.engine.runner", "layers point down"),
    ("harness/engine/timeline.py", "import harness.workflows.compare", "layers point down"),
    ("faults/network.py", "import attacks.evasion", "faults and attacks are independent"),
    ("harness/engine/runner.py", "import faults.network", "only through the registry"),
    ("faults/proxy/client.py", "import faults.process", "the proxy stands on the core only"),
    ("harness/demo/data.py", "import harness.core.units", "imports nothing of the rest"),
    ("harness/engine/target.py", "import harness.demo.launcher", "nothing below the CLI imports the demo"),
])
def test_a_wrong_way_import_fails(tree: Path, tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    root = tmp_path / "tree"
    shutil.copytree(tree, root)
    path = root / module
    path.write_text(path.read_text() + f"\n{bad_import}  # wrong way, on purpose\n")
    proc = lint_imports(root)
    assert proc.returncode != 0
    broken = [line for line in proc.stdout.splitlines() if line.endswith("BROKEN") or " BROKEN (" in line]
    assert len(broken) == 1 and contract in broken[0], proc.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {bad_import.removeprefix('import ')}" in proc.stdout
