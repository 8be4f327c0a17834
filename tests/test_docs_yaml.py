"""The YAML the docs show parses, and the game-day and schedule examples load with the real
loaders and mean what they say (an unquoted ` #` silently cut a checkpoint's text)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_docs_shell import fenced_blocks, markdown_files

from harness.workflows.gameday import load_plan
from harness.workflows.schedule import load_schedule

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = [(f"{md.relative_to(ROOT)}:{line}", body) for md in markdown_files()
          for lang, line, body in fenced_blocks(md.read_text(encoding="utf-8")) if lang in ("yaml", "yml")]


@pytest.mark.parametrize(("where", "body"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_yaml_block_parses(where: str, body: str) -> None:
    try:
        list(yaml.safe_load_all(body))
    except yaml.YAMLError as exc:
        pytest.fail(f"{where}: {exc}")


def _report_readme_block(key: str) -> str:
    text = (ROOT / "harness" / "reports" / "README.md").read_text(encoding="utf-8")
    return next(body for lang, _, body in fenced_blocks(text) if lang == "yaml" and f"\n{key}:" in f"\n{body}")


def test_the_game_day_example_loads_and_keeps_its_checkpoint_text(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    plan = tmp_path / "plans" / "gameday.yaml"
    plan.write_text(_report_readme_block("steps"))
    loaded = load_plan(plan)
    checkpoints = [s.checkpoint for s in loaded.plan.steps if s.checkpoint]
    assert checkpoints[0] == "Announce the game day in #fraud-oncall"
    assert len(loaded.scenarios) == 2


def test_the_schedule_example_loads(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    (tmp_path / "plans" / "gameday.yaml").write_text(_report_readme_block("steps"))
    plan = tmp_path / "plans" / "schedule.yaml"
    plan.write_text(_report_readme_block("jobs"))
    assert [j.name for j in load_schedule(plan).plan.jobs] == ["nightly-latency", "monthly-gameday"]
