"""Toxics by type name: one module per toxic, all behind `toxics.base.Toxic`."""

from __future__ import annotations

from faults.proxy.toxics.bandwidth import BandwidthToxic
from faults.proxy.toxics.base import InvalidAttributes, Kind, Piece, Toxic
from faults.proxy.toxics.http_delay import HttpDelayToxic
from faults.proxy.toxics.http_error import HttpErrorToxic
from faults.proxy.toxics.http_stream_corrupt import HttpStreamCorruptToxic
from faults.proxy.toxics.http_stream_cut import HttpStreamCutToxic
from faults.proxy.toxics.http_stream_slow import HttpStreamSlowToxic
from faults.proxy.toxics.http_stream_stall import HttpStreamStallToxic
from faults.proxy.toxics.latency import LatencyToxic
from faults.proxy.toxics.limit_data import LimitDataToxic
from faults.proxy.toxics.noop import NoopToxic
from faults.proxy.toxics.reset_peer import ResetPeerToxic
from faults.proxy.toxics.slicer import SlicerToxic
from faults.proxy.toxics.slow_close import SlowCloseToxic
from faults.proxy.toxics.timeout import TimeoutToxic

TOXIC_TYPES: dict[str, type[Toxic]] = {
    cls.type: cls
    for cls in (
        LatencyToxic,
        BandwidthToxic,
        SlowCloseToxic,
        TimeoutToxic,
        ResetPeerToxic,
        SlicerToxic,
        LimitDataToxic,
        NoopToxic,
        HttpErrorToxic,
        HttpDelayToxic,
        HttpStreamSlowToxic,
        HttpStreamStallToxic,
        HttpStreamCutToxic,
        HttpStreamCorruptToxic,
    )
}

__all__ = ["TOXIC_TYPES", "InvalidAttributes", "Kind", "Piece", "Toxic"]
