"""The demo's signed model artifacts, on real files: every kind of tampering is refused by the
verifying loader, and loaded without a word by the fragile one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from artifact_support import model_bytes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.demo.artifacts import ArtifactLoader, ArtifactLoadFailed
from harness.demo.model import FallbackNet, FraudNet, Models
from harness.demo.model_cache import save_models
from harness.demo.signing import (
    KEY_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    ArtifactRefused,
    publish_artifact,
    signing_key,
    verify_artifact,
    verify_key,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture
def artifact(state: Path, tmp_path: Path) -> Path:
    return publish_artifact(tmp_path / "v2", model_bytes(1), "v2", signing_key(state))


def refusal(path: Path, state: Path, version: str | None = "v2") -> str:
    with pytest.raises(ArtifactRefused) as caught:
        verify_artifact(path, verify_key(state), version)
    return caught.value.reason


def test_a_published_artifact_verifies_and_loads(artifact: Path, state: Path) -> None:
    verified = verify_artifact(artifact, verify_key(state), "v2")
    assert verified.data == model_bytes(1) and verified.manifest["version"] == "v2"
    assert verify_artifact(artifact / MODEL_FILE, verify_key(state), "v2").data == verified.data
    loaded = ArtifactLoader(state, verify=True).load(artifact, "v2")
    assert loaded.verified and loaded.models.meta == {"seed": 1, "version": "v2"}


def test_a_flipped_byte_is_refused(artifact: Path, state: Path) -> None:
    data = bytearray((artifact / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (artifact / MODEL_FILE).write_bytes(bytes(data))
    assert refusal(artifact, state) == "digest"


def test_a_truncated_file_is_refused(artifact: Path, state: Path) -> None:
    data = (artifact / MODEL_FILE).read_bytes()
    (artifact / MODEL_FILE).write_bytes(data[: len(data) // 2])
    assert refusal(artifact, state) == "digest"


def test_another_models_file_is_refused(artifact: Path, state: Path) -> None:
    (artifact / MODEL_FILE).write_bytes(model_bytes(2))
    assert refusal(artifact, state) == "digest"


def test_a_manifest_rewritten_to_match_is_refused(artifact: Path, state: Path) -> None:
    import hashlib

    other = model_bytes(2)
    (artifact / MODEL_FILE).write_bytes(other)
    manifest = json.loads((artifact / MANIFEST_FILE).read_text())
    manifest.update(sha256=hashlib.sha256(other).hexdigest(), bytes=len(other))
    (artifact / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert refusal(artifact, state) == "signature"


def test_a_whole_artifact_of_another_version_is_refused(state: Path, tmp_path: Path) -> None:
    swapped = publish_artifact(tmp_path / "v2", model_bytes(3), "v1", signing_key(state))
    assert refusal(swapped, state, "v2") == "version"
    assert verify_artifact(swapped, verify_key(state), "v1").manifest["version"] == "v1"


def test_an_artifact_signed_by_another_key_is_refused(state: Path, tmp_path: Path) -> None:
    stranger = publish_artifact(tmp_path / "v2", model_bytes(1), "v2", Ed25519PrivateKey.generate())
    assert refusal(stranger, state) == "signature"


def test_an_unsigned_artifact_is_refused(artifact: Path, state: Path) -> None:
    (artifact / SIGNATURE_FILE).unlink()
    assert refusal(artifact, state) == "missing"


def test_the_fragile_loader_loads_a_swapped_model_and_fails_on_a_truncated_one(
    artifact: Path, state: Path
) -> None:
    (artifact / MODEL_FILE).write_bytes(model_bytes(2))
    loaded = ArtifactLoader(state, verify=False).load(artifact, "v2")
    assert not loaded.verified and loaded.models.meta["seed"] == 2  # the swapped-in model serves
    (artifact / MODEL_FILE).write_bytes(model_bytes(2)[:500])
    with pytest.raises(ArtifactLoadFailed):
        ArtifactLoader(state, verify=False).load(artifact, "v2")


def test_publishers_that_start_together_share_one_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    save_models(state, Models(main=FraudNet(), fallback=FallbackNet(), meta={"robust_eps": 0.1}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "harness.demo", "publish", "--version", f"v{i}",
                               "--out", str(tmp_path / f"v{i}"), "--state-dir", str(state)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for i in (1, 2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.communicate()[0]
    for i in (1, 2):  # each signed with the one key that stayed
        assert verify_artifact(tmp_path / f"v{i}", verify_key(state), f"v{i}").manifest["variant"] == "robust"
    assert (state / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert not [p for p in state.iterdir() if p.name.endswith(".tmp")]
