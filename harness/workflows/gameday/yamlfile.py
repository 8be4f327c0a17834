"""Read a plan YAML file (game day, schedule) into a pydantic model, with the scenario
loader's error style: every problem as `file:line:col: field.path: message`.

It reuses harness/engine/scenario/loader.py's machinery (reading, marks, Problem, ScenarioError,
pydantic error translation) rather than repeating it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from harness.engine.scenario.loader import (
    Marks,
    Problem,
    ScenarioError,
    problem_at,
    pydantic_problems,
    read_text_file,
    read_yaml,
)

M = TypeVar("M", bound=BaseModel)
__all__ = ["Marks", "PlanError", "load_model", "problem_at"]  # plan modules take these from here


class PlanError(ScenarioError):
    """A plan file with problems; str() lists each as file:line:col: field.path: message."""


def load_model(path: Path, model: type[M], what: str) -> tuple[M, Marks]:
    """Parse `path` as `model`; raise PlanError listing every problem with its location."""
    file = str(path)
    text = read_text_file(path, PlanError, f"{what} file not found")
    data, marks = read_yaml(text, file, PlanError)
    if not isinstance(data, dict):
        raise PlanError(
            [Problem(file, 1, 1, "", f"a {what} must be a mapping; see harness/reports/README.md")]
        )
    try:
        return model.model_validate(data), marks
    except ValidationError as err:
        raise PlanError(pydantic_problems(err, model, (), marks, file)) from None
