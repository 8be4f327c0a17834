"""Loading a model version from an artifact, as `POST /admin/deploy {"artifact": ...}` does.

Resilient mode (``--verify-artifacts``) checks the artifact's signature, digest and
version before it loads anything (signing.py); the service logs and counts a refusal
(``demo_artifacts_refused_total{reason}``) and the serving versions stay. Fragile mode
loads whatever model file it finds, the way a server does that trusts its model folder.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from harness.demo.model import Models
from harness.demo.model_cache import models_from_bytes
from harness.demo.signing import ArtifactRefused, read_unverified, verify_artifact, verify_key


class ArtifactLoadFailed(Exception):
    """The artifact's file did not load as a model (fragile mode: nothing verified it)."""


@dataclass(frozen=True)
class LoadedVersion:
    version: str
    models: Models
    verified: bool


class ArtifactLoader:
    """Loads model versions from artifacts, verifying them first when ``verify`` is on."""

    def __init__(self, state_dir: Path, verify: bool) -> None:
        self.state_dir = Path(state_dir)
        self.verify = verify
        self.lock = threading.Lock()  # one load at a time: two deploys do not interleave

    def load(self, path: Path, version: str) -> LoadedVersion:
        """The models of ``version`` from the artifact at ``path``.

        Raises ArtifactRefused (verify on) when a check fails, ArtifactLoadFailed when
        the bytes are not a model.
        """
        with self.lock:
            if self.verify:
                data = verify_artifact(path, verify_key(self.state_dir), version).data
            else:
                try:
                    data = read_unverified(path)
                except OSError as exc:
                    raise ArtifactLoadFailed(f"{path}: {exc.strerror}") from exc
            try:
                models = models_from_bytes(data)
            except Exception as exc:  # any way a file is not a model is one answer
                if self.verify:
                    raise  # signed by our key yet unloadable: our own bug, keep the traceback
                raise ArtifactLoadFailed(f"{path}: not a loadable model: {exc!r}") from exc
            models.meta["version"] = version
            return LoadedVersion(version=version, models=models, verified=self.verify)


__all__ = ["ArtifactLoadFailed", "ArtifactLoader", "ArtifactRefused", "LoadedVersion"]
