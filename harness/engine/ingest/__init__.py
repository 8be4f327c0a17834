"""The event stream the harness ingests into the target (`ingest:`), and what it reads back."""

from harness.engine.ingest.tally import INGEST_FIGURES, StoreTally

__all__ = ["INGEST_FIGURES", "StoreTally"]
