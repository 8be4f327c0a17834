"""UserError on its own, free of heavy imports: the standalone proxy (`aftershock proxy`)
raises it too, and must not load pydantic and the fault model to do so."""

from __future__ import annotations


class UserError(Exception):
    """An error the scenario author can fix; shown without a traceback."""
