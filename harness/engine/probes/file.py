"""File probe: the last value of a field in a JSONL progress file (e.g. a training log).

Only the file's tail is read (more if the field is not found there); a half-written last
line is skipped, so the probe can read a file another process is appending to.
"""

from __future__ import annotations

import json
import os
from typing import Literal

import jmespath
from pydantic import field_validator

from harness.core.json_query import check_json_query
from harness.core.probe import Probe, ProbeConfig, to_number

_CHUNK = 64 * 1024


class FileProbeConfig(ProbeConfig):
    type: Literal["file"] = "file"
    path: str
    field: str  # a key or a JMESPath into each line, e.g. loss or metrics.val_acc

    @field_validator("field")
    @classmethod
    def _field(cls, v: str) -> str:
        return check_json_query(v)


class FileProbe(Probe):
    type = "file"
    Config = FileProbeConfig
    config: FileProbeConfig

    def read(self) -> float:
        query = jmespath.compile(self.config.field)
        with open(self.config.path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            chunk = _CHUNK
            while True:
                start = max(0, size - chunk)
                f.seek(start)
                lines = f.read(size - start).split(b"\n")
                if start > 0:
                    lines = lines[1:]  # the first line may be cut
                for line in reversed(lines):
                    if not line.strip():
                        continue
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue  # half-written or not JSON
                    found = query.search(doc)
                    if found is not None:
                        return to_number(found, f"{self.config.field} in {self.config.path}")
                if start == 0:
                    raise LookupError(f"no line of {self.config.path} has {self.config.field!r}")
                chunk *= 4
