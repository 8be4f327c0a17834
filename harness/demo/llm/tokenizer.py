"""A character-level tokenizer: one token per printable ASCII character, plus role markers.

Characters are the tokens so that "one token per SSE event" is one character per event,
and any canary the user picks can be spelt (and copied) by the model.
"""

from __future__ import annotations

SPECIALS = ("<pad>", "<sys>", "<user>", "<asst>", "<eos>")
PAD, SYS, USER, ASST, EOS = range(len(SPECIALS))
CHARS = "\n" + "".join(chr(c) for c in range(32, 127))
UNKNOWN = "?"  # a character outside printable ASCII reads as this
VOCAB_SIZE = len(SPECIALS) + len(CHARS)
_INDEX = {ch: i + len(SPECIALS) for i, ch in enumerate(CHARS)}


def encode_text(text: str) -> list[int]:
    unknown = _INDEX[UNKNOWN]
    return [_INDEX.get(ch, unknown) for ch in text]


def decode_token(token: int) -> str:
    """The text of one token; role markers and padding have none."""
    return CHARS[token - len(SPECIALS)] if token >= len(SPECIALS) else ""


def encode_dialogue(system: str, user: str) -> list[int]:
    """The prompt the model completes: system turn, user turn, then the assistant marker."""
    return [SYS, *encode_text(system), USER, *encode_text(user), ASST]
