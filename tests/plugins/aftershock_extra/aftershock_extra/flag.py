"""A fault that raises a flag (a file) while it acts, and a probe that reads the flag:
each checks the other in a scenario (the probe reads 1 exactly while the fault acts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from harness.core.fault import Fault, FaultFailed, FaultParams
from harness.core.probe import Probe, ProbeConfig


class FlagParams(FaultParams):
    path: str


class FlagFault(Fault):
    type = "extra.flag"
    Params = FlagParams
    params: FlagParams

    def undo_record(self) -> dict[str, Any]:
        return {"path": self.params.path}

    def inject(self) -> None:
        Path(self.params.path).write_text("raised")
        if not Path(self.params.path).exists():
            raise FaultFailed(f"flag {self.params.path} was not raised")

    def revert(self) -> None:
        Path(self.params.path).unlink(missing_ok=True)

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        Path(record["path"]).unlink(missing_ok=True)
        return f"lowered flag {record['path']}"


class FlagProbeConfig(ProbeConfig):
    type: Literal["extra.flag"] = "extra.flag"
    path: str


class FlagProbe(Probe):
    type = "extra.flag"
    Config = FlagProbeConfig
    config: FlagProbeConfig

    def read(self) -> float:
        return 1.0 if Path(self.config.path).exists() else 0.0
