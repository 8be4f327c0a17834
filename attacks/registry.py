"""Attack types by name: the built-in families plus the `aftershock.attacks` entry-point group."""

from __future__ import annotations

import difflib
import importlib
import inspect
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from harness.core.attack import Attack
from harness.core.extras import missing_extra_message
from harness.core.fault import UserError

BUILTIN_ATTACK_MODULES = [
    "attacks.evasion",
    "attacks.whitebox",
    "attacks.poisoning",
    "attacks.abuse",
]


# built-in attack modules whose optional dependencies (the `ml` extra) are missing -> module
MISSING: dict[str, str] = {}


@cache
def attack_types() -> dict[str, type[Attack]]:
    found: dict[str, type[Attack]] = {}
    for mod_name in BUILTIN_ATTACK_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:  # torch, ART, hypothesis: a core install has none
            MISSING[mod_name] = exc.name or "?"
            continue
        for obj in vars(mod).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Attack)
                and not inspect.isabstract(obj)
                and isinstance(getattr(obj, "type", None), str)
            ):
                found[obj.type] = obj
    for ep in entry_points(group="aftershock.attacks"):
        cls = ep.load()
        found[getattr(cls, "type", ep.name)] = cls
    return found


def attack_class(type_name: str) -> type[Attack]:
    """The class registered as `type_name`; UserError (with a suggestion) if none is."""
    types = attack_types()
    if type_name not in types and MISSING:
        raise UserError(missing_extra_message(", ".join(sorted(set(MISSING.values()))), "ml",
                                              f"attack type {type_name!r}"))
    if "attacks.evasion" not in MISSING:
        from attacks.evasion import REFUSED, REFUSED_ADVICE

        if type_name in REFUSED:
            raise UserError(
                f"attack type {type_name!r} is not supported: {REFUSED[type_name]}; {REFUSED_ADVICE}"
            )
    if type_name not in types:
        close = difflib.get_close_matches(type_name, list(types), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(
            f"unknown attack type {type_name!r}{hint}; known: {', '.join(sorted(types))}"
        )
    return types[type_name]


def make_attack(name: str, type_name: str, params: dict[str, Any]) -> Attack:
    """Build an attack from a timeline entry's extra keys; UserError on bad params."""
    cls = attack_class(type_name)
    try:
        validated = cls.Params(**params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"attack {name!r} ({type_name}): {problems}") from None
    return cls(name, validated)
