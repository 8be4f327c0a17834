"""The demo's generative service: a tiny char-level transformer behind an OpenAI-compatible gateway."""
