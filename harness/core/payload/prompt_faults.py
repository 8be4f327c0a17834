"""The files between prompt faults (`llm.long_prompt`, harness side) and the generative load
(the Locust child): which faults are active, and what the child sent under each.

The active faults travel as data faults do (harness.core.payload.payload_channel), in a
control file of their own so that ModelUser's data faults never see them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CONTROL_FILE = "prompt-faults.json"  # harness -> child: the active prompt faults
SENT_FILE = "prompt-faults-sent.json"  # child -> harness: requests and long prompts sent per fault

Sent = dict[str, dict[str, int]]  # fault name -> {"requests": n, "long": k}


def control_file(load_dir: str | Path) -> Path:
    return Path(load_dir) / CONTROL_FILE


def sent_file(load_dir: str | Path) -> Path:
    """Written by a generative load as it starts (empty), then with its counts: a prompt
    fault that finds none has no load to act on."""
    return Path(load_dir) / SENT_FILE


def read_sent(load_dir: str | Path) -> Sent:
    """What the child sent per fault ({} before it wrote anything)."""
    try:
        data = json.loads(sent_file(load_dir).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_sent(load_dir: str | Path, sent: Sent) -> None:
    """Replace the counts atomically: the harness may read them at any time."""
    fd, tmp = tempfile.mkstemp(prefix=".prompt-faults-sent-", dir=load_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(sent, f)
    os.replace(tmp, sent_file(load_dir))
