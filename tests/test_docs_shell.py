"""The shell the docs show parses as bash: every ```bash/```sh/```shell block of every
Markdown file in the repo, and every `run:` step of the GitHub Actions workflows they show."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELLS = ("bash", "sh", "shell", "console")


def markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return sorted(ROOT / p for p in listed if (ROOT / p).is_file())


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, 1-based line of the fence, body) of each fenced block."""
    return [(m.group(1).lower(), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in _FENCE.finditer(text)]


def workflow_steps(body: str) -> list[dict]:
    """The steps of a YAML block that is a GitHub Actions workflow (has jobs with steps)."""
    try:
        doc = yaml.safe_load(body)
    except yaml.YAMLError:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), dict):
        return []
    return [s for job in doc["jobs"].values() if isinstance(job, dict) for s in job.get("steps") or []]


def shell_snippets() -> list[tuple[str, str]]:
    """(where, script) for every shell block and workflow `run:` step of the docs."""
    found = []
    for md in markdown_files():
        rel = md.relative_to(ROOT)
        for lang, line, body in fenced_blocks(md.read_text(encoding="utf-8")):
            if lang in SHELLS:
                found.append((f"{rel}:{line}", body))
            elif lang in ("yaml", "yml"):
                found += [(f"{rel}:{line} step {s.get('name') or s['run'][:30]!r}", s["run"])
                          for s in workflow_steps(body) if isinstance(s, dict) and "run" in s]
    return found


def bash_syntax_error(script: str) -> str:
    r = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30, check=False)
    return r.stderr if r.returncode else ""


SNIPPETS = shell_snippets()


def test_the_docs_have_shell_to_check() -> None:
    where = [w for w, _ in SNIPPETS]
    assert any(w.startswith("README.md:") for w in where)
    assert any(w.startswith("harness/reports/README.md:") and " step " in w for w in where)  # the CI workflow


@pytest.mark.parametrize(("where", "script"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_shell_block_parses_in_bash(where: str, script: str) -> None:
    assert not bash_syntax_error(script), f"{where}: bash -n says:\n{bash_syntax_error(script)}"


def test_the_check_catches_an_unquoted_tolerance() -> None:
    """What a newcomer hit: `--tolerance p95(latency)=15%` unquoted is a bash syntax error."""
    assert bash_syntax_error("aftershock compare a b --tolerance p95(latency)=15%\n")
    assert not bash_syntax_error("aftershock compare a b --tolerance 'p95(latency)=15%'\n")
