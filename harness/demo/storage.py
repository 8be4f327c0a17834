"""Checksummed, atomic files: the model cache and the training checkpoints.

A blob is written to a temporary file, fsynced and renamed into place; then a
small JSON manifest holding its SHA-256 is written the same way. A reader
verifies the blob against the manifest, so a torn or tampered file is caught
(``ChecksumMismatch``) instead of being loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch


class ChecksumMismatch(Exception):
    """The blob on disk is not the one its manifest describes."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new bytes, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def manifest_path(blob: Path) -> Path:
    return blob.with_name(blob.name + ".json")


def save_checksummed(blob: Path, obj: Any, meta: dict[str, Any] | None = None) -> str:
    """torch.save ``obj`` to ``blob`` with a manifest; returns the SHA-256."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    atomic_write(blob, data)
    digest = hashlib.sha256(data).hexdigest()
    manifest = {"file": blob.name, "sha256": digest, "bytes": len(data), **(meta or {})}
    atomic_write(manifest_path(blob), json.dumps(manifest, indent=2).encode())
    return digest


def read_manifest(blob: Path) -> dict[str, Any]:
    return json.loads(manifest_path(blob).read_text())


def load_checksummed(blob: Path) -> Any:
    """Load what ``save_checksummed`` wrote, after checking its SHA-256.

    Raises FileNotFoundError when there is nothing saved, ChecksumMismatch when
    the blob and its manifest disagree (or the manifest is unreadable).
    """
    if not blob.exists() or not manifest_path(blob).exists():
        raise FileNotFoundError(blob)
    try:
        expected = read_manifest(blob)["sha256"]
    except (ValueError, KeyError) as exc:
        raise ChecksumMismatch(f"{manifest_path(blob)}: unreadable manifest ({exc})") from exc
    actual = sha256_of(blob)
    if actual != expected:
        raise ChecksumMismatch(
            f"{blob}: SHA-256 {actual[:12]}… does not match the manifest's {expected[:12]}…"
        )
    return torch.load(blob, map_location="cpu", weights_only=True)
