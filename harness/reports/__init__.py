"""The pages a run leaves for people to read: report.html, summary.md, attacks.json.

A reporter plug-in (`harness.engine.reporter`) the engine finds through the registry."""
