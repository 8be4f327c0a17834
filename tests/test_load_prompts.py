"""load.prompts: JSONL prompts read and checked (file:line on a bad line), or generated from a seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.fault import UserError
from harness.engine.load.prompts import Prompt, generated_prompts, load_prompts
from harness.engine.scenario.loader import ScenarioError, parse_scenario


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_messages_and_prompts_with_labels(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.jsonl",
               json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
                           "expected": "4"}),
               "",
               json.dumps({"prompt": "once upon", "refusal": True}))
    assert load_prompts(f) == [
        Prompt(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], expected="4"),
        Prompt(text="once upon", refusal=True),
    ]


@pytest.mark.parametrize(("line", "message"), [
    ('{"prompt": "a"', r"p.jsonl:2:\d+: not JSON"),
    ('{"prompt": "a", "answer": "b"}', r"p.jsonl:2:1: field answer: Extra inputs"),
    ('{"expected": "b"}', r'p.jsonl:2:1: .*exactly one of "messages"'),
    ('{"messages": [{"role": "robot", "content": "x"}]}', r"p.jsonl:2:1: .*unknown role 'robot'"),
    ('{"prompt": "a", "refusal": "maybe"}', r"p.jsonl:2:1: field refusal"),
])
def test_bad_lines_name_file_line_and_fix(tmp_path: Path, line: str, message: str) -> None:
    f = _write(tmp_path / "p.jsonl", '{"prompt": "fine"}', line)
    with pytest.raises(UserError, match=message):
        load_prompts(f)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_prompts(tmp_path / "none.jsonl")
    with pytest.raises(UserError, match="no prompts"):
        load_prompts(_write(tmp_path / "e.jsonl", ""))


def test_generated_prompts_follow_the_seed() -> None:
    assert generated_prompts(3) == generated_prompts(3)
    assert generated_prompts(3) != generated_prompts(4)
    assert len({p.text for p in generated_prompts(3, 64)}) > 32  # varied, not one prompt again


def test_scenario_load_reports_the_bad_prompt_line(tmp_path: Path) -> None:
    _write(tmp_path / "prompts.jsonl", '{"prompt": "ok"}', '{"promt": "typo"}')
    text = ("name: t\ntarget: {url: 'http://127.0.0.1:9', protocol: openai-chat, model: m}\n"
            "load: {users: 1, duration: 5s, prompts: prompts.jsonl, max_tokens: 16}\n")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, str(tmp_path / "s.yaml"))
    assert "s.yaml:3" in str(err.value) and "prompts.jsonl:2:1: field promt" in str(err.value)
