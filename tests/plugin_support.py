"""The third-party plug-in package of the tests (tests/plugins/aftershock_extra), installed
the way a user installs one: `pip install` into a folder, here a temporary one put on the
path (so the shared venv stays clean); the registry finds it by its dist-info."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.core.registry import ATTACKS, FAULTS, PROBES, PROTOCOLS

PACKAGE = Path(__file__).parent / "plugins" / "aftershock_extra"


def install_extra(work: Path) -> Path:
    """aftershock-extra pip-installed (no dependencies, no build isolation) into `work`/site;
    a copy is built, so the source tree stays clean."""
    source, target = work / PACKAGE.name, work / "site"
    shutil.copytree(PACKAGE, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, text=True)
    return target


def reload_registries() -> None:
    """Forget the plug-ins found so far (after the path changed)."""
    for registry in (FAULTS, ATTACKS, PROBES, PROTOCOLS):
        registry.reload()
