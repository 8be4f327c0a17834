"""Attacks on generative (chat) endpoints: prompt injection, jailbreaks, system-prompt
leaks and context floods, judged by deterministic detectors (canaries, markers, a
refusal classifier) that never call an outside service."""
