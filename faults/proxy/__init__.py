"""The embedded Toxiproxy-compatible fault proxy (see shared/toxiproxy-api.md)."""

from faults.proxy.embedded import EmbeddedProxy

__all__ = ["EmbeddedProxy"]
