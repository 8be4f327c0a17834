"""The one registry of plug-ins: faults (data faults among them), attacks, probes, protocols.

Every plug-in, built-in or third-party, is an entry point in its kind's group
(`aftershock.faults`, `aftershock.attacks`, `aftershock.probes`, `aftershock.protocols`):
the entry point's name is the YAML name, its value the class. The engine looks plug-ins
up here and nowhere else, so a new family is a module plus an entry point.

A plug-in is imported when it is first asked for (a Locust child that needs one data
fault imports that module alone). Run from a source checkout, aftershock's own entry
points are read from its pyproject.toml rather than from the installed metadata, which
an editable install leaves stale until it is reinstalled.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import tomllib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.core.extras import EXTRA_OF, missing_extra_message
from harness.core.fault import Fault, UserError

T = TypeVar("T")

DISTRIBUTION = "aftershock"
SOURCE_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class PluginError(UserError):
    """A plug-in is unknown, cannot be imported, or is not what its group expects."""


class MissingDependency(PluginError):
    """A plug-in needs a package that is not installed here."""


@cache
def source_entry_points() -> dict[str, list[EntryPoint]] | None:
    """aftershock's own entry points by group, from the checkout's pyproject.toml; None
    when aftershock runs from an installed wheel (no pyproject.toml beside the packages)."""
    try:
        project = tomllib.loads(SOURCE_PYPROJECT.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None
    if project.get("name") != DISTRIBUTION:
        return None
    groups = project.get("entry-points", {})
    return {g: [EntryPoint(n, v, g) for n, v in eps.items()] for g, eps in groups.items()}


def origin(ep: EntryPoint) -> str:
    """Where an entry point comes from, for error messages: `name = value` in group (package)."""
    dist = ep.dist.name if ep.dist is not None else f"{DISTRIBUTION} (source)"
    return f"entry point '{ep.name} = {ep.value}' in group {ep.group} (package {dist})"


class Registry(Generic[T]):
    """The plug-ins of one kind: names without importing anything, classes on demand."""

    def __init__(self, group: str, noun: str, base: str, name_attr: str) -> None:
        self.group = group  # the entry-point group
        self.noun = noun  # what one is called in messages: "fault type", "protocol"
        self._base = base  # "module:Class" every plug-in of the kind subclasses (imported late)
        self.name_attr = name_attr  # the class attribute that holds the YAML name
        self._loaded: dict[str, type[T]] = {}

    def __repr__(self) -> str:
        return f"Registry({self.group!r})"

    @property
    def base(self) -> type[T]:
        module, _, name = self._base.partition(":")
        return getattr(importlib.import_module(module), name)

    def entry_points(self) -> dict[str, EntryPoint]:
        """Name -> entry point: aftershock's own and every installed package's."""
        return _entry_points(self.group)

    def names(self) -> list[str]:
        return sorted(self.entry_points())

    def __contains__(self, name: object) -> bool:
        return name in self.entry_points()

    def get(self, name: str) -> type[T]:
        """The class registered as `name`; PluginError (with a suggestion) if there is none,
        or naming the package and entry point if it cannot be loaded."""
        if name in self._loaded:
            return self._loaded[name]
        eps = self.entry_points()
        if name not in eps:
            close = difflib.get_close_matches(name, list(eps), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PluginError(f"unknown {self.noun} {name!r}{hint}; known: {', '.join(sorted(eps))}")
        cls = self._load(eps[name])
        self._loaded[name] = cls
        return cls

    def types(self) -> dict[str, type[T]]:
        """Every plug-in of the kind that can be imported here, by name. One whose optional
        dependency is missing is left out (`get` says which extra installs it); one that is
        broken raises PluginError. The registry's own table: what a caller adds to it (a
        test's plug-in, with monkeypatch.setitem) `get` finds too."""
        for name in self.names():
            try:
                self.get(name)
            except MissingDependency:
                continue
        return self._loaded

    def reload(self) -> None:
        """Forget what was found and loaded (after a package was installed or put on the path)."""
        self._loaded.clear()
        _entry_points.cache_clear()

    def _load(self, ep: EntryPoint) -> type[T]:
        try:
            cls: Any = ep.load()
        except ModuleNotFoundError as exc:
            own = ep.module == exc.name or ep.module.startswith(f"{exc.name}.")
            if own or exc.name is None:
                raise PluginError(f"{self.noun} {ep.name!r}: cannot import {ep.module!r} ({origin(ep)})") from None
            top = exc.name.partition(".")[0]
            extra = EXTRA_OF.get(top) if ep.dist is None or ep.dist.name == DISTRIBUTION else None
            message = (missing_extra_message(exc.name, extra, f"{self.noun} {ep.name!r}") if extra
                       else f"{self.noun} {ep.name!r} needs {exc.name} (not installed here; {origin(ep)})")
            raise MissingDependency(message) from None
        except Exception as exc:  # noqa: BLE001 - any failure of a plug-in's import is the plug-in's
            raise PluginError(f"{self.noun} {ep.name!r} cannot be loaded from {origin(ep)}: "
                              f"{type(exc).__name__}: {exc}") from None
        base = self.base
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            raise PluginError(f"{self.noun} {ep.name!r}: {ep.value} is not a subclass of "
                              f"{base.__module__}.{base.__qualname__} ({origin(ep)})")
        declared = getattr(cls, self.name_attr, None)
        if declared != ep.name:
            raise PluginError(f"{self.noun} {ep.name!r}: {ep.value}.{self.name_attr} is {declared!r}, "
                              f"not the entry point's name ({origin(ep)})")
        return cls


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    source = source_entry_points()
    own = source.get(group, []) if source is not None else None
    found: dict[str, EntryPoint] = {ep.name: ep for ep in own or []}
    for ep in entry_points(group=group):
        if own is not None and ep.dist is not None and ep.dist.name == DISTRIBUTION:
            continue  # the checkout's pyproject.toml speaks for aftershock
        if ep.name in found and found[ep.name].value != ep.value:
            raise PluginError(f"two plug-ins are named {ep.name!r}: {origin(found[ep.name])} and {origin(ep)}")
        found[ep.name] = ep
    return found


FAULTS: Registry[Fault] = Registry("aftershock.faults", "fault type", "harness.core.fault:Fault", "type")
ATTACKS: Registry[Any] = Registry("aftershock.attacks", "attack type", "harness.core.attack:Attack", "type")
PROBES: Registry[Any] = Registry("aftershock.probes", "probe type", "harness.core.probe:Probe", "type")
PROTOCOLS: Registry[Any] = Registry(
    "aftershock.protocols", "protocol", "harness.core.protocols.base:ProtocolAdapter", "name"
)


def fault_types() -> dict[str, type[Fault]]:
    """Every fault type that can be imported here (data faults among them), by YAML name."""
    return FAULTS.types()
