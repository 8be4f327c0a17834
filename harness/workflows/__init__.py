"""Workflows over runs: compare, game days, schedules, the drift test. Above the engine."""
