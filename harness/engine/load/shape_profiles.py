"""How many users a load shape wants at each second of the run (pure; no Locust).

The Locust child wraps these in LoadTestShape classes (harness.engine.load.locust_shapes);
keeping the arithmetic here lets the harness and tests reason about a shape without Locust.
"""

from __future__ import annotations

from harness.engine.load.config import (
    ArrivalRateShape,
    ConstantShape,
    LoadConfig,
    RampShape,
    SpikeShape,
    StepShape,
)


def users_at(config: LoadConfig, t: float) -> int | None:
    """Users wanted `t` seconds into the run; None once the run is over."""
    if t >= config.duration:
        return None
    shape = config.shape
    if isinstance(shape, (ConstantShape, ArrivalRateShape)):
        return config.users
    if isinstance(shape, RampShape):
        end = config.users if shape.end_users is None else shape.end_users
        ramp = shape.ramp_time or config.duration
        frac = min(1.0, t / ramp) if ramp > 0 else 1.0
        return round(shape.start_users + (end - shape.start_users) * frac)
    if isinstance(shape, StepShape):
        top = shape.max_users or config.users
        return min(top, shape.step_users * (int(t // shape.step_time) + 1))
    if isinstance(shape, SpikeShape):
        in_spike = shape.at <= t < shape.at + shape.spike_duration
        return shape.spike_users if in_spike else shape.base_users
    raise ValueError(f"shape {shape.kind!r} has no built-in profile")


def spawn_rate(config: LoadConfig) -> float:
    """Users started per second when the count changes (default: at once)."""
    if config.spawn_rate is not None:
        return config.spawn_rate
    shape = config.shape
    peak = config.users
    if isinstance(shape, SpikeShape):
        peak = max(shape.base_users, shape.spike_users)
    elif isinstance(shape, RampShape) and shape.end_users is not None:
        peak = max(shape.start_users, shape.end_users)
    elif isinstance(shape, StepShape) and shape.max_users is not None:
        peak = shape.max_users
    return float(max(peak, 1))
