"""The gateway's guardrail: an input screen for injection and jailbreak phrasing, and an
output filter that redacts the canary and its transformations, even mid-stream.

The input screen is a list of regexes, the kind of deterministic detector a gateway runs
before a model; what it misses the output filter still catches for the secret. The
output filter compares a *skeleton* of the text (letters and digits only, lower case)
with skeletons of the canary, the canary reversed, its base64, hex and rot13: so
"aftershock canary 7f3a9c", "A-F-T-E-R..." and "c9a3f7-YRANAC-KCOHSRETFA" are caught too.
While the stream's tail could still become one of them it is held back, so a redacted
secret never reaches the client, not even in part.
"""

from __future__ import annotations

import base64
import codecs
import re

INJECTION_PATTERNS = (
    (r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(previous|prior|above|earlier|all|your|the|system)\b"
     r".{0,20}\b(instructions?|rules|prompts?|guidelines|directions|context)"),
    r"\bnew instructions\b",
    r"\bsystem override\b",
    r"\b(developer|debug|god|admin|jailbreak|unrestricted|dan) mode\b",
    r"\bdo anything now\b",
    r"\byou are (now )?dan\b",
    r"\b(pretend|act as if|imagine) (that )?you (have|had) no (rules|restrictions|limits|guidelines)",
    r"\bwithout (any )?(restrictions|filters|rules|censorship)\b",
    r"\bas your (administrator|admin|developer|creator)\b",
    (r"\b(reveal|print|show|repeat|output|spell|leak|dump|write out|give me|tell me)\b.{0,30}"
     r"\b(secret|password|system prompt|hidden instructions|canary|initial prompt|confidential)\b"),
    r"\bi have been pwned\b",
)
REFUSAL = "I'm sorry, I can't help with that request."
REDACTED = "[REDACTED]"
_INPUT = re.compile("|".join(f"(?:{p})" for p in INJECTION_PATTERNS), re.IGNORECASE | re.DOTALL)


def flags_input(text: str) -> bool:
    """True when the text reads as a prompt injection or jailbreak attempt."""
    return _INPUT.search(text) is not None


def skeleton(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def canary_forms(canary: str) -> list[str]:
    """Skeletons of the canary and the transformations an attacker asks the model for."""
    forms = {canary, canary[::-1], base64.b64encode(canary.encode()).decode(), canary.encode().hex(),
             codecs.encode(canary, "rot13")}
    return [s for s in {skeleton(f) for f in forms} if s]


class Redactor:
    """Feed the output piece by piece; what it returns is safe to send."""

    def __init__(self, canary: str) -> None:
        self.forms = canary_forms(canary)
        self.pending = ""
        self.redactions = 0

    def _could_become_secret(self, text: str) -> bool:
        sk = skeleton(text)
        return any(form.startswith(sk) for form in self.forms)

    def feed(self, piece: str) -> str:
        self.pending += piece
        sk = skeleton(self.pending)
        if sk and any(sk == form or form in sk for form in self.forms):
            self.pending, self.redactions = "", self.redactions + 1
            return REDACTED
        out = []
        # release the head of the held text until what is left could still start a secret
        while self.pending and (not self.pending[0].isalnum() or not self._could_become_secret(self.pending)):
            out.append(self.pending[0])
            self.pending = self.pending[1:]
        return "".join(out)

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return rest
