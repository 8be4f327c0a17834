"""A long-running training job that survives being killed.

Every ``checkpoint_every`` steps it writes an atomic, checksummed checkpoint
(model, optimizer, step, RNG state). Started again, it resumes from the last
good checkpoint, so a SIGKILL costs at most one checkpoint interval of steps.
On SIGTERM it checkpoints the step it is on and exits 0. Progress goes to a
JSONL file, one flushed line per event:

    {"event": "start", "steps": 200, "device": "cpu", "time": ...}
    {"event": "resumed", "from_step": 40, "time": ...}
    {"event": "step", "step": 41, "loss": 0.52, "time": ...}
    {"event": "checkpoint", "step": 50, "path": ".../checkpoint.pt", "time": ...}
    {"event": "stopped", "step": 57, "reason": "SIGTERM", "time": ...}
    {"event": "done", "step": 200, "loss": 0.11, "time": ...}
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import IO, Any

import torch
from torch import nn

from harness.demo.data import entity_table, sample
from harness.demo.model import FraudNet, preprocess_entities, preprocess_transactions
from harness.demo.storage import ChecksumMismatch, load_checksummed, save_checksummed

CHECKPOINT_FILE = "checkpoint.pt"
BATCH_SIZE = 256


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device; use auto or cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


class Progress:
    """The JSONL progress file; each line is flushed as it is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        self.file.write(json.dumps({"event": event, **fields, "time": time.time()}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TrainingJob:
    def __init__(
        self,
        state_dir: Path,
        steps: int,
        checkpoint_every: int,
        progress: Path,
        step_time: float = 0.05,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        if steps < 1 or checkpoint_every < 1:
            raise ValueError("--steps and --checkpoint-every must be at least 1")
        self.state_dir = Path(state_dir)
        self.checkpoint = self.state_dir / CHECKPOINT_FILE
        self.steps = steps
        self.checkpoint_every = checkpoint_every
        self.step_time = step_time
        self.device = pick_device(device)
        self.seed = seed
        self.progress = Progress(progress)
        self.stop_signal: str | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signal.Signals(signum).name

    def run(self) -> int:
        """Train to ``steps`` (or until SIGTERM/SIGINT); returns the exit code, 0."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        threads = torch.get_num_threads()
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.progress.close()

    def _data(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = sample(4000, 0, 0)
        x = torch.hstack(
            [
                torch.from_numpy(preprocess_transactions(rows.features)),
                torch.from_numpy(preprocess_entities(entity_table(0)[rows.entity_id])),
            ]
        )
        return x.to(self.device), torch.from_numpy(rows.label).to(self.device)

    def _run(self) -> int:
        if self.device.type == "cpu":
            torch.set_num_threads(1)  # a small model: extra threads only contend
        x, y = self._data()
        torch.manual_seed(self.seed)
        model = FraudNet().to(self.device)
        model.norm.fit(x)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        generator = torch.Generator().manual_seed(self.seed)
        step = self._resume(model, optimizer, generator)
        if step == 0:
            self.progress.write("start", steps=self.steps, device=str(self.device))
        loss_fn = nn.CrossEntropyLoss()
        loss = float("nan")
        while step < self.steps:
            if self.stop_signal:
                self._save(model, optimizer, generator, step)
                self.progress.write("stopped", step=step, reason=self.stop_signal)
                return 0
            batch = torch.randint(0, len(y), (BATCH_SIZE,), generator=generator).to(self.device)
            optimizer.zero_grad()
            batch_loss = loss_fn(model(x[batch]), y[batch])
            batch_loss.backward()
            optimizer.step()
            step += 1
            loss = float(batch_loss.detach())
            self.progress.write("step", step=step, loss=loss)
            if step % self.checkpoint_every == 0 or step == self.steps:
                self._save(model, optimizer, generator, step)
            if self.step_time > 0:
                time.sleep(self.step_time)  # stands for a heavier step; makes kills land mid-run
        self.progress.write("done", step=step, loss=loss)
        return 0

    def _save(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        step: int,
    ) -> None:
        state = {
            "step": step,
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
        }
        save_checksummed(self.checkpoint, state, meta={"step": step})
        self.progress.write("checkpoint", step=step, path=str(self.checkpoint))

    def _resume(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> int:
        try:
            state = load_checksummed(self.checkpoint)
        except FileNotFoundError:
            return 0
        except ChecksumMismatch as exc:
            self.progress.write("checkpoint_corrupt", error=str(exc))
            return 0
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step = int(state["step"])
        self.progress.write("resumed", from_step=step)
        return step
