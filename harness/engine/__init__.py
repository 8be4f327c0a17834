"""The engine: scenarios, the runner, timeline, load, windows and SLOs, probes, ledger, journal,
reports. Finds faults, attacks, probes, protocols and data transforms only through the registry."""
