"""Signed model artifacts: an Ed25519 signature over a manifest that holds the model's SHA-256.

An artifact is a folder of three files, as a registry or a CI job would publish it:

    model.pt        the model (torch.save of the demo's state dicts)
    manifest.json   {"file", "sha256", "bytes", "version", "created", ...}
    manifest.sig    Ed25519 signature of manifest.json's exact bytes

The signature covers the manifest and the manifest covers the model, so a flipped byte,
a truncated file or another model's file put in its place fails the digest; a manifest
edited to match fails the signature; a whole artifact of another version, validly
signed, fails the version check; an artifact signed by another key fails the signature.
The model's bytes are read once, checked, and loaded from memory: a file swapped between
the check and the load cannot get in.

The demo keeps its key pair in the state folder (``signing-key.pem``, mode 0600, and
``signing-key.pub``); `python -m harness.demo publish` signs with it, the server
verifies with the public half.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness.demo.storage import atomic_write

KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub"
MODEL_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"


class ArtifactRefused(Exception):
    """The artifact failed verification; ``reason`` is one of REFUSAL_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


REFUSAL_REASONS = ("missing", "signature", "digest", "version")


def signing_key(state_dir: Path) -> Ed25519PrivateKey:
    """The demo's signing key in ``state_dir``, created at first use.

    Runs that share the folder may start together: the key is written to a temporary
    file and linked into place, so exactly one key wins and every process reads it.
    """
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process linked its key first: read that one
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} holds no Ed25519 private key")  # noqa: TRY004 (a bad file: exit 2, not a traceback)
    public = path.with_name(PUBLIC_KEY_FILE)
    public_pem = loaded.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not public.exists() or public.read_bytes() != public_pem:
        atomic_write(public, public_pem)
    return loaded


def verify_key(state_dir: Path) -> Ed25519PublicKey:
    """The public key that artifacts must be signed with (the state folder's key pair)."""
    return signing_key(state_dir).public_key()


def publish_artifact(
    out_dir: Path,
    model_bytes: bytes,
    version: str,
    key: Ed25519PrivateKey,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a signed artifact of ``model_bytes`` as ``version`` into ``out_dir``."""
    out_dir = Path(out_dir)
    manifest = {
        **(meta or {}),
        "file": MODEL_FILE,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "bytes": len(model_bytes),
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    atomic_write(out_dir / MODEL_FILE, model_bytes)
    atomic_write(out_dir / MANIFEST_FILE, manifest_bytes)
    atomic_write(out_dir / SIGNATURE_FILE, key.sign(manifest_bytes))  # last: its presence means done
    return out_dir


def model_file(path: Path) -> Path:
    """The model file a deploy names: ``path`` itself, or the artifact folder's model.pt."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


@dataclass(frozen=True)
class VerifiedModel:
    """A model's bytes that passed verification, and the manifest that vouched for them."""

    data: bytes
    manifest: dict[str, Any]


def read_unverified(path: Path) -> bytes:
    """The model's bytes as found, with no check at all (what fragile mode loads)."""
    return model_file(path).read_bytes()


def verify_artifact(path: Path, key: Ed25519PublicKey, version: str | None = None) -> VerifiedModel:
    """Check the artifact at ``path`` (signature, then digest, then version) and return its
    model bytes; ArtifactRefused says which check failed."""
    model = model_file(path)
    folder = model.parent
    try:
        manifest_bytes = (folder / MANIFEST_FILE).read_bytes()
        signature = (folder / SIGNATURE_FILE).read_bytes()
        data = model.read_bytes()
    except OSError as exc:
        raise ArtifactRefused("missing", f"{folder}: {exc.filename}: {exc.strerror}") from exc
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise ArtifactRefused(
            "signature", f"{folder}: the manifest's signature does not verify with the trusted key"
        ) from None
    manifest = json.loads(manifest_bytes)  # signed by us: well-formed
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest["sha256"] or len(data) != manifest["bytes"]:
        raise ArtifactRefused(
            "digest",
            f"{model}: SHA-256 {digest[:12]}… ({len(data)} bytes) is not the "
            f"manifest's {manifest['sha256'][:12]}… ({manifest['bytes']} bytes)",
        )
    if version is not None and manifest["version"] != version:
        raise ArtifactRefused(
            "version",
            f"{folder}: the signed manifest is of version {manifest['version']!r}, not {version!r}",
        )
    return VerifiedModel(data=data, manifest=manifest)
