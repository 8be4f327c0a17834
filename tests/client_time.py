"""How much of a request's latency the client could have added, from a server's own record.

A request's latency as the client sees it is at least its service time (the server got it
after the client started and answered before the client read), and at most that plus the
client's time on each side: the gap since the server's previous answer on that keep-alive
connection (the client read it, then started this one) and until its next request (it
read this answer before). On a busy 2-core box those gaps, not the harness, are where a
client's waits for a core go; the last request of each connection (in flight when the
load stopped) has no gap after it to excuse anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The client's median time per request between the server's answers: 1-3 ms, up to 8 ms
# seen on a 2-core box at load 12 (a Locust child idle 150 ms waits for a core to wake).
# A harness that stalled its own loop on every request would pass the bound, not this.
MAX_CLIENT_MS = 20.0


def with_client_time(requests: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows of (arrival s, service s, status, connection, ...) plus a last column: the
    service time plus the client's gaps around it on its connection (s), the most the
    client can have measured for that request."""
    rows = np.array(requests, dtype=float)
    bound = rows[:, 1].copy()
    for conn in np.unique(rows[:, 3]):
        idx = np.flatnonzero(rows[:, 3] == conn)
        idx = idx[np.argsort(rows[idx, 0])]
        sent = rows[idx, 0] + rows[idx, 1]
        gaps = np.maximum(rows[idx[1:], 0] - sent[:-1], 0.0)  # answer -> next request
        bound[idx[1:]] += gaps
        bound[idx[:-1]] += gaps
    return np.column_stack([rows, bound])
