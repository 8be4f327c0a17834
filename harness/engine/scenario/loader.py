"""Read a scenario file into a validated Scenario, or explain exactly what is wrong.

Every problem is reported as `file:line:col: field.path: message` (all of them at
once, not just the first), with "did you mean" for misspelled keys and fault types.
YAML is read with the safe loader; `${env:NAME}` is replaced from the environment
and the values are remembered as secrets so the journal and reports can redact them.

Input is bounded before anything acts on it: the file's size, the values its aliases
expand to (an alias "bomb" of a few lines expands to gigabytes), and every number
(finite, within MAX_NUMBER), so that what `validate` accepts a run can carry out.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.core.fault import Fault, UserError
from harness.core.pipeline_fault import PipelineFault
from harness.core.registry import fault_types
from harness.core.safety import check_host_allowed
from harness.engine.ingest.tally import INGEST_FIGURES
from harness.engine.probes.placeholders import fill_target_url
from harness.engine.redaction import Redactor
from harness.engine.scenario.model import Scenario

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

MAX_FILE_BYTES = 1024 * 1024  # the shipped scenarios are under 4 KB
MAX_VALUES = 100_000  # values after alias expansion (mappings, lists and scalars)
MAX_TEXT = 4 * MAX_FILE_BYTES  # characters of text after alias expansion
MAX_NUMBER = 2**53  # every integer up to here is exact as a float and in JSON


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ScenarioError(UserError):
    """The scenario has problems; str() lists each on its own line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class LoadedScenario:
    scenario: Scenario
    path: Path
    faults: list[tuple[type[Fault], Any]]  # (fault class, validated params) per timeline entry
    attacks: list[Any] = field(default_factory=list)  # harness.core.attack.Attack per timeline attack
    slos: list[Any] = field(default_factory=list)  # harness.engine.slo.Slo per `slos:` entry, parsed once
    stops: list[Any] = field(default_factory=list)  # harness.engine.slo.StopCondition per `stop_when:` entry
    secrets: list[str] = field(default_factory=list)
    slo_lines: list[int] = field(default_factory=list)  # 1-based line of each SLO's `expect:` (CI annotations)


@dataclass
class Marks:
    """Where each value (and each mapping key) sits in the file."""

    value: dict[Path_, yaml.Mark] = field(default_factory=dict)
    key: dict[Path_, yaml.Mark] = field(default_factory=dict)

    def at(self, path: Path_, prefer_key: bool = False) -> yaml.Mark | None:
        p = tuple(path)
        while True:
            table = (self.key, self.value) if prefer_key else (self.value, self.key)
            for t in table:
                if p in t:
                    return t[p]
            if not p:
                return None
            p = p[:-1]


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _ExpansionBudget:
    """Counts what the document expands to, so that aliases cannot multiply it unbounded."""

    def __init__(self, file: str) -> None:
        self.file, self.values, self.text = file, 0, 0

    def take(self, node: yaml.Node) -> None:
        self.values += 1
        if isinstance(node, yaml.ScalarNode):
            self.text += len(node.value)
        if self.values > MAX_VALUES or self.text > MAX_TEXT:
            m = node.start_mark
            raise ScenarioError([Problem(self.file, m.line + 1, m.column + 1, "",
                                         f"the document expands to more than {MAX_VALUES} values or "
                                         f"{MAX_TEXT // 2**20} MiB of text (aliases?): write it out smaller")])


def _to_python(node: yaml.Node, path: Path_, marks: Marks, ctor: yaml.SafeLoader, problems: list, file: str,
               budget: _ExpansionBudget) -> Any:
    budget.take(node)
    marks.value[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # never expand a complex key
                m = key_node.start_mark
                problems.append(Problem(file, m.line + 1, m.column + 1, _dotted(path), "mapping keys must be plain text"))
                continue
            key = ctor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                m = key_node.start_mark
                problems.append(Problem(file, m.line + 1, m.column + 1, _dotted(path), "mapping keys must be plain text"))
                continue
            key = str(key)
            child = (*path, key)
            if key in out:
                m = key_node.start_mark
                problems.append(Problem(file, m.line + 1, m.column + 1, _dotted(child), "duplicate key: remove one of them"))
            marks.key[child] = key_node.start_mark
            out[key] = _to_python(value_node, child, marks, ctor, problems, file, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, i), marks, ctor, problems, file, budget) for i, v in enumerate(node.value)]
    return ctor.construct_object(node, deep=True)


def _interpolate(value: Any, path: Path_, secrets: list[str], missing: list[tuple[Path_, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), secrets, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), secrets, missing) for i, v in enumerate(value)]
    if isinstance(value, str) and "${env:" in value:

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                missing.append((path, name))
                return ""
            if os.environ[name]:
                secrets.append(os.environ[name])
            return os.environ[name]

        return _ENV.sub(sub, value)
    return value


def _model_at(model: type[BaseModel], loc: Path_) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc` (for did-you-mean suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            if isinstance(part, str) and part in current.model_fields:
                current = current.model_fields[part].annotation
                continue
            return None
        current = _unwrap(current, part)
        if current is None:
            return None
    return _unwrap(current, None) if not (isinstance(current, type) and issubclass(current, BaseModel)) else current


def _unwrap(tp: Any, part: str | int | None) -> Any:
    """Step into Optional[...] / list[...] / dict[str, ...] to the model inside."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            if a is not type(None):
                found = _unwrap(a, part) if part is not None else a
                if found is not None:
                    return found
        return None
    if origin is list and part is not None:
        return args[0]
    if origin is dict and part is not None:
        return args[1]
    if origin is typing.Annotated:
        return _unwrap(args[0], part)
    if part is None and isinstance(tp, type):
        return tp
    return None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def pydantic_problems(err: ValidationError, model: type[BaseModel], prefix: Path_, marks: Marks, file: str) -> list[Problem]:
    out = []
    for e in err.errors(include_url=False):
        loc = (*prefix, *e["loc"])
        # pydantic appends the validator name for tagged/function validators; drop non-keys
        loc = tuple(p for p in loc if not (isinstance(p, str) and (p.startswith("function-") or "[" in p)))
        kind = e["type"]
        if kind == "extra_forbidden":
            owner = _model_at(model, tuple(e["loc"][:-1]))
            fields = list(owner.model_fields) if owner else []
            msg = f"unknown key {loc[-1]!r}{_suggest(str(loc[-1]), fields)}"
            if fields:
                msg += f"; allowed here: {', '.join(fields)}"
            mark = marks.at(loc, prefer_key=True)
        elif kind == "missing":
            msg = f"missing required field {loc[-1]!r}"
            mark = marks.at(loc[:-1])
        else:
            msg = e["msg"].removeprefix("Value error, ")
            mark = marks.at(loc)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        out.append(Problem(file, line, col, _dotted(loc), msg))
    return out


def load_scenario(path: str | os.PathLike[str], allow_hosts: list[str] | tuple[str, ...] = ()) -> LoadedScenario:
    """Load and fully validate a scenario file, or raise ScenarioError.

    `allow_hosts` adds to the scenario's safety.allowed_hosts (the --allow-host flag)."""
    p = Path(path)
    text = read_text_file(p, ScenarioError, "file not found")
    return parse_scenario(text, str(path), base_dir=p.parent, allow_hosts=allow_hosts)


def read_text_file(path: Path, error: type[ScenarioError], not_found: str) -> str:
    """A YAML file's text, within the loader's size limit; `error` names file:1:1 otherwise."""
    file = str(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise error([Problem(file, 1, 1, "", _too_big(path.stat().st_size))])
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error([Problem(file, 1, 1, "", not_found)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error([Problem(file, 1, 1, "", f"cannot read the file: {exc}")]) from None


def read_yaml(text: str, file: str, error: type[ScenarioError] = ScenarioError) -> tuple[Any, Marks]:
    """Parse YAML text with the loader's limits (size, alias expansion) and keep each
    node's position; raise `error` listing every problem as file:line:col."""
    problems: list[Problem] = []
    marks = Marks()
    if len(text) > MAX_FILE_BYTES:
        raise error([Problem(file, 1, 1, "", _too_big(len(text)))])
    try:
        ctor = yaml.SafeLoader(text)
        try:
            node = ctor.get_single_node()
            data = _to_python(node, (), marks, ctor, problems, file, _ExpansionBudget(file)) if node is not None else None
        finally:
            ctor.dispose()
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark or exc.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise error([Problem(file, line, col, "", f"YAML syntax error: {what}; check the indentation and quoting here")]) from None
    except yaml.YAMLError as exc:
        raise error([Problem(file, 1, 1, "", f"YAML error: {exc}")]) from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. bad timestamps or huge nesting
        raise error([Problem(file, 1, 1, "", f"YAML value error: {exc}")]) from None
    if problems:
        raise error(problems)
    return data, marks


def parse_scenario(text: str, file: str = "<scenario>", base_dir: Path | None = None,
                   allow_hosts: list[str] | tuple[str, ...] = ()) -> LoadedScenario:
    data, marks = read_yaml(text, file)
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise ScenarioError([Problem(file, 1, 1, "", "a scenario must be a mapping with name:, target:, load:, timeline: and slos:")])

    secrets: list[str] = []
    missing: list[tuple[Path_, str]] = []
    data = _interpolate(data, (), secrets, missing)
    for where, name in missing:
        m = marks.at(where)
        problems.append(Problem(file, m.line + 1 if m else 1, m.column + 1 if m else 1, _dotted(where),
                                f"environment variable {name} is not set: export it or remove ${{env:{name}}}"))
    try:
        return _validated(data, marks, file, problems, secrets, base_dir, allow_hosts)
    except ScenarioError as err:  # a message may quote a bad value, and that value may be a secret
        if not secrets:
            raise
        # messages quote values as Python (repr) or JSON writes them: mask those forms too
        forms = {f for v in secrets for f in (v, repr(v)[1:-1], json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1])}
        mask = Redactor(forms).text
        raise ScenarioError([replace(p, path=mask(p.path), message=mask(p.message)) for p in err.problems]) from None


def _validated(data: dict[str, Any], marks: Marks, file: str, problems: list[Problem], secrets: list[str],
               base_dir: Path | None, allow_hosts: list[str] | tuple[str, ...]) -> LoadedScenario:
    problems.extend(_number_problems(data, (), marks, file))
    if problems:
        raise ScenarioError(problems)

    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        found = pydantic_problems(err, Scenario, (), marks, file)
        at = {(p.line, p.path) for p in found}
        found += [p for p in _beside_schema(data, marks, file) if (p.line, p.path) not in at]
        raise ScenarioError(sorted(found, key=lambda p: (p.line, p.col))) from None

    scenario.safety.allowed_hosts.extend(h for h in allow_hosts if h not in scenario.safety.allowed_hosts)
    problems.extend(_number_problems(scenario, (), marks, file))  # e.g. `weight: "nan"` as text
    faults = _validate_faults(scenario, marks, file, problems)
    attacks = _validate_attacks(scenario, marks, file, problems)
    _validate_probes(scenario, marks, file, problems)
    _validate_semantics(scenario, marks, file, problems)
    _validate_prompts(scenario, marks, file, problems, base_dir or Path(file).parent)
    slos, stops = _validate_expressions(scenario, marks, file, problems)
    if problems:
        raise ScenarioError(problems)
    slo_lines = [(m.line + 1 if (m := marks.at(("slos", i, "expect"))) else 1) for i in range(len(scenario.slos))]
    return LoadedScenario(scenario, Path(file) if base_dir is None else base_dir / Path(file).name, faults,
                          attacks, slos, stops, secrets, slo_lines)


def _too_big(size: int) -> str:
    return (f"the file is {size} bytes, over the {MAX_FILE_BYTES // 1024} KiB a scenario may have: "
            "split it, or move data into a dataset file")


def _number_problems(value: Any, path: Path_, marks: Marks, file: str) -> list[Problem]:
    """Every number NaN, infinite or beyond MAX_NUMBER, anywhere in `value` (a field's
    own checks say what is negative or too big for it; this bounds what none checks)."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _number_problems(v, (*path, k), marks, file)]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _number_problems(v, (*path, i), marks, file)]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    if isinstance(value, float) and not math.isfinite(value):
        return [problem_at(file, marks, path, f"{value} is not a number a run can use: write a finite value")]
    if abs(value) > MAX_NUMBER:
        return [problem_at(file, marks, path, f"{_short(value)} is beyond the largest value allowed ({MAX_NUMBER:.0e})")]
    return []


def _short(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 30 else f"a {len(text)}-digit number"


def problem_at(file: str, marks: Marks, path: Path_, message: str, prefer_key: bool = False, col_offset: int = 0) -> Problem:
    """A Problem located where `path` sits in the file (its key with `prefer_key`)."""
    m = marks.at(path, prefer_key)
    return Problem(file, m.line + 1 if m else 1, (m.column + 1 if m else 1) + col_offset, _dotted(path), message)


def _validated_params(model: type[BaseModel], data: dict[str, Any], base: Path_, marks: Marks, file: str,
                      problems: list[Problem]) -> Any | None:
    """`data` validated as a fault's or attack's `model`; None once its problems are added."""
    try:
        params = model.model_validate(data)
    except ValidationError as err:
        problems.extend(pydantic_problems(err, model, base, marks, file))
        return None
    numbers = _number_problems(params, base, marks, file)
    problems.extend(numbers)
    return None if numbers else params


def _validate_faults(scenario: Scenario, marks: Marks, file: str, problems: list[Problem]) -> list[tuple[type[Fault], Any]]:
    registry = fault_types()
    deps = set(scenario.dependencies)
    procs = {"target", *deps, *scenario.jobs}
    seen: set[str] = set()
    out: list[tuple[type[Fault], Any]] = []
    for i, entry in enumerate(scenario.timeline.faults):
        base: Path_ = ("timeline", "faults", i)
        if entry.name in seen:
            problems.append(problem_at(file, marks, (*base, "name"), f"fault name {entry.name!r} is used twice: names must be unique"))
        seen.add(entry.name)
        cls = registry.get(entry.type)
        if cls is None:
            problems.append(problem_at(file, marks, (*base, "type"), _unknown_fault_type(entry.type, registry)))
            continue
        params = _validated_params(cls.Params, entry.params(), base, marks, file, problems)
        if params is None:
            continue
        try:
            cls.check(params, deps, procs)
            if docker_host := getattr(params, "docker_host", None):  # the daemon a container fault drives
                check_host_allowed(docker_host, scenario.safety.allowed_hosts, "docker_host")
            if (check_load := getattr(cls, "check_load", None)) is not None:  # data faults: will the load apply it?
                check_load(scenario.load.data.labels, scenario.load.locustfile)
        except UserError as exc:
            problems.append(problem_at(file, marks, base, str(exc)))
            continue
        out.append((cls, params))
    return out


def _validate_attacks(scenario: Scenario, marks: Marks, file: str, problems: list[Problem]) -> list[Any]:
    if not scenario.timeline.attacks:
        return []
    from harness.core.attack import attack_class

    out = []
    taken = {f.name for f in scenario.timeline.faults}
    for i, entry in enumerate(scenario.timeline.attacks):
        base: Path_ = ("timeline", "attacks", i)
        if entry.name in taken:
            problems.append(problem_at(file, marks, (*base, "name"), f"name {entry.name!r} is used twice: fault and attack names must be unique"))
        taken.add(entry.name)
        try:
            cls = attack_class(entry.type)
        except UserError as exc:  # unknown (with a suggestion), refused, or needs the ml extra
            problems.append(problem_at(file, marks, (*base, "type"), str(exc)))
            continue
        params = _validated_params(cls.Params, entry.params(), base, marks, file, problems)
        if params is None:
            continue
        t = scenario.timeline
        if entry.at < t.baseline or entry.at + entry.duration > scenario.load.duration:
            problems.append(problem_at(file, marks, (*base, "at"), f"the attack runs {entry.at:g}s..{entry.at + entry.duration:g}s: "
                                     f"keep it after the {t.baseline:g}s baseline and inside load.duration ({scenario.load.duration:g}s)"))
        out.append(cls(entry.name, params))
    return out


def _validate_probes(scenario: Scenario, marks: Marks, file: str, problems: list[Problem]) -> None:
    from harness.engine.probes import probe_types
    from harness.engine.probes.placeholders import fill_probe_placeholders

    types = probe_types()
    names: set[str] = set()
    for i, data in enumerate(scenario.probes):
        base: Path_ = ("probes", i)
        kind = data.get("type")
        if not isinstance(kind, str) or kind not in types:
            problems.append(problem_at(file, marks, (*base, "type") if "type" in data else base,
                                     f"unknown probe type {kind!r}{_suggest(str(kind), sorted(types))}; "
                                     f"known types: {', '.join(sorted(types))}"))
            continue
        try:
            config = types[kind].Config.model_validate(fill_probe_placeholders(data, example=True))
        except ValidationError as err:
            problems.extend(pydantic_problems(err, types[kind].Config, base, marks, file))
            continue
        except UserError as exc:
            problems.append(problem_at(file, marks, base, str(exc)))
            continue
        problems.extend(_number_problems(config, base, marks, file))
        if config.name in names:
            problems.append(problem_at(file, marks, (*base, "name"), f"probe name {config.name!r} is used twice"))
        names.add(config.name)
        for host in types[kind].addresses_of(config):
            try:
                check_host_allowed(host, scenario.safety.allowed_hosts)
            except UserError as exc:
                problems.append(problem_at(file, marks, base, str(exc)))


def _validate_prompts(scenario: Scenario, marks: Marks, file: str, problems: list[Problem], folder: Path) -> None:
    """`load.prompts` is read now: a bad line is reported (its file:line) before anything starts."""
    if not scenario.load.prompts:
        return
    from harness.engine.load.prompts import load_prompts

    try:
        load_prompts(folder / scenario.load.prompts)
    except UserError as exc:
        problems.append(problem_at(file, marks, ("load", "prompts"), str(exc)))


def _validate_semantics(scenario: Scenario, marks: Marks, file: str, problems: list[Problem]) -> None:
    from harness.core.protocols import adapter_types

    protocols = sorted(adapter_types())
    if scenario.target.protocol not in protocols:
        problems.append(problem_at(file, marks, ("target", "protocol"),
                                 f"unknown protocol {scenario.target.protocol!r}{_suggest(scenario.target.protocol, protocols)}: "
                                 f"use one of {', '.join(protocols)}"))
    t = scenario.timeline
    total = scenario.load.duration
    if t.baseline > total:
        problems.append(problem_at(file, marks, ("timeline", "baseline"), f"baseline ({t.baseline:g}s) is longer than load.duration ({total:g}s)"))
    for i, f in enumerate(t.faults):
        base: Path_ = ("timeline", "faults", i)
        if f.at < t.baseline:
            problems.append(problem_at(file, marks, (*base, "at"), f"fault starts at {f.at:g}s, inside the {t.baseline:g}s baseline: start it at or after the baseline"))
        if f.at + f.duration > total:
            problems.append(problem_at(file, marks, (*base, "duration"), f"fault ends at {f.at + f.duration:g}s, after the load ends at {total:g}s: shorten it or lengthen load.duration"))
        if f.duration <= 0:
            problems.append(problem_at(file, marks, (*base, "duration"), "duration must be more than 0s"))
    allowed = scenario.safety.allowed_hosts
    if scenario.target.url:  # checked as filled in, with example loopback values for {deps[NAME]}
        try:
            check_host_allowed(fill_target_url(scenario.target.url, example=True), allowed)
        except UserError as exc:
            problems.append(problem_at(file, marks, ("target", "url"), str(exc)))
    if scenario.toxiproxy and scenario.toxiproxy.url:
        try:
            check_host_allowed(scenario.toxiproxy.url, allowed)
        except UserError as exc:
            problems.append(problem_at(file, marks, ("toxiproxy", "url"), str(exc)))
    for name in scenario.jobs:
        if name in scenario.dependencies or name == "target":
            problems.append(problem_at(file, marks, ("jobs", name), f"job name {name!r} is taken by the target or a dependency"))
    for name, dep in scenario.dependencies.items():
        if dep.container and dep.container.docker_host:
            try:
                check_host_allowed(dep.container.docker_host, allowed)
            except UserError as exc:
                problems.append(problem_at(file, marks, ("dependencies", name, "container", "docker_host"), str(exc)))
        if dep.upstream == "demo":
            if scenario.target.demo is None:
                problems.append(problem_at(file, marks, ("dependencies", name, "upstream"), "upstream: demo needs target: {demo: fraud} or {demo: llm}"))
            continue
        if dep.upstream is not None:
            try:
                check_host_allowed(dep.upstream, allowed)
            except UserError as exc:
                problems.append(problem_at(file, marks, ("dependencies", name, "upstream"), str(exc)))
    registry = fault_types()
    for i, f in enumerate(t.faults):
        if scenario.ingest is None and issubclass(registry.get(f.type, Fault), PipelineFault):
            problems.append(problem_at(file, marks, ("timeline", "faults", i, "type"),
                                       f"{f.type} acts on the event stream the harness ingests, and this scenario has "
                                       "none: add an `ingest:` section (e.g. ingest: {rate: 20/s}; README, Pipeline faults)"))
    if scenario.target.demo and not any(d.upstream == "demo" for d in scenario.dependencies.values()):
        problems.append(problem_at(file, marks, ("dependencies",), "the demo target needs its dependency declared: dependencies: {feature-store: {upstream: demo}} for demo: fraud, {model-backend: {upstream: demo}} for demo: llm"))


def _parse_expressions(exprs: list[tuple[Path_, Any, Any]], names: list[str], types: list[str], attacks: bool,
                       probes: set[str], marks: Marks, file: str, problems: list[Problem]) -> list[Any]:
    """Parse each (path, text, parser) against the scenario's scopes (fault and attack `names`)
    and readable figures (probes, what the fault `types` report, attack metrics)."""
    from harness.engine.slo import SloSyntaxError

    scopes = {"run", "baseline", "fault", "recovery", *names}
    probes = set(probes)
    registry = fault_types()
    for kind in types:  # figures faults report are readable like probes
        probes.update(getattr(registry.get(kind), "metric_names", ()))
    if attacks:  # figures attacks report are readable by name too
        from harness.core.attack_metrics import ATTACK_METRIC_NAMES

        probes |= ATTACK_METRIC_NAMES
    parsed: list[Any] = []
    for path, text, parse in exprs:
        try:
            parsed.append(parse(text, known_scopes=scopes, known_probes=probes))
        except SloSyntaxError as exc:
            col = getattr(exc, "column", 1) or 1
            message = str(exc)
            if any(f"probe '{name}'" in message for name in INGEST_FIGURES) and not set(INGEST_FIGURES) <= probes:
                message += "\n  a figure of the event stream the harness ingests: add an `ingest:` section (README, Pipeline faults)"
            problems.append(problem_at(file, marks, path, message, col_offset=col - 1))
    return parsed


def _beside_schema(data: dict[str, Any], marks: Marks, file: str) -> list[Problem]:
    """The mistakes a schema error would hide (unknown fault types, SLO and stop_when
    expressions), checked on the raw mapping, so that one `validate` lists them all."""
    from harness.engine.slo import parse_slo, parse_stop

    def entries(value: Any) -> list[tuple[int, dict[str, Any]]]:
        return [(i, e) for i, e in enumerate(value if isinstance(value, list) else []) if isinstance(e, dict)]

    timeline = data.get("timeline") if isinstance(data.get("timeline"), dict) else {}
    faults, attacks = entries(timeline.get("faults")), entries(timeline.get("attacks"))
    problems: list[Problem] = []
    registry = fault_types()
    for i, f in faults:
        if isinstance(f.get("type"), str) and f["type"] not in registry:
            problems.append(problem_at(file, marks, ("timeline", "faults", i, "type"), _unknown_fault_type(f["type"], registry)))
    exprs = [(("slos", i, "expect"), s["expect"], parse_slo) for i, s in entries(data.get("slos"))
             if isinstance(s.get("expect"), str)]
    stops = data.get("stop_when")
    exprs += [(("stop_when", i), s, parse_stop) for i, s in enumerate(stops if isinstance(stops, list) else [])
              if isinstance(s, str)]
    names = [str(e.get("name")) for _, e in (*faults, *attacks)]
    types = [f["type"] for _, f in faults if isinstance(f.get("type"), str)]
    probes = {str(p.get("name")) for _, p in entries(data.get("probes"))}
    probes |= set(INGEST_FIGURES) if isinstance(data.get("ingest"), dict) else set()
    _parse_expressions(exprs, names, types, bool(attacks), probes, marks, file, problems)
    return problems


def _unknown_fault_type(kind: str, registry: dict[str, Any]) -> str:
    return f"unknown fault type {kind!r}{_suggest(kind, sorted(registry))}; known types: {', '.join(sorted(registry))}"


def _validate_expressions(scenario: Scenario, marks: Marks, file: str,
                          problems: list[Problem]) -> tuple[list[Any], list[Any]]:
    from harness.engine.slo import (  # the SLO language lives in harness.engine.slo
        parse_slo,
        parse_stop,
    )

    t = scenario.timeline
    exprs = [(("slos", i, "expect"), s.expect, parse_slo) for i, s in enumerate(scenario.slos)]
    exprs += [(("stop_when", i), s, parse_stop) for i, s in enumerate(scenario.stop_when)]
    parsed = _parse_expressions(exprs, [f.name for f in (*t.faults, *t.attacks)], [f.type for f in t.faults],
                                bool(t.attacks), {str(p.get("name")) for p in scenario.probes}
                                | (set(INGEST_FIGURES) if scenario.ingest else set()), marks, file, problems)
    names = [s.name for s in scenario.slos]
    for i, n in enumerate(names):
        if names.index(n) != i:
            problems.append(problem_at(file, marks, ("slos", i, "name"), f"SLO name {n!r} is used twice: names must be unique"))
    return parsed[: len(scenario.slos)], parsed[len(scenario.slos):]
