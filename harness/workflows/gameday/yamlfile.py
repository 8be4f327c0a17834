"""Read a plan YAML file (game day, schedule) into a pydantic model, with the scenario
loader's error style: every problem as `file:line:col: field.path: message`.

It reuses harness/engine/scenario/loader.py's machinery (marks, Problem, ScenarioError,
pydantic error translation) rather than repeating it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from harness.engine.scenario.loader import (
    Problem,
    ScenarioError,
    _Marks,
    _problem,
    _pydantic_problems,
    read_yaml,
)

M = TypeVar("M", bound=BaseModel)
Marks = _Marks
problem_at = _problem  # (file, marks, path, message) -> Problem


class PlanError(ScenarioError):
    """A plan file with problems; str() lists each as file:line:col: field.path: message."""


def load_model(path: Path, model: type[M], what: str) -> tuple[M, Marks]:
    """Parse `path` as `model`; raise PlanError listing every problem with its location."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError([Problem(file, 1, 1, "", f"{what} file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([Problem(file, 1, 1, "", f"cannot read the file: {exc}")]) from None
    data, marks = read_yaml(text, file, PlanError)
    if not isinstance(data, dict):
        raise PlanError(
            [Problem(file, 1, 1, "", f"a {what} must be a mapping; see harness/reports/README.md")]
        )
    try:
        return model.model_validate(data), marks
    except ValidationError as err:
        raise PlanError(_pydantic_problems(err, model, (), marks, file)) from None
