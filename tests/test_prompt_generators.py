"""The prompt generators are seeded: the same seed gives the same prompts, another seed
others; the jailbreak generator composes its parts rather than cycling a short list."""

from __future__ import annotations

import base64
import codecs

from attacks.prompts.benign import benign_prompts
from attacks.prompts.canary import SecretDetector
from attacks.prompts.injection import injections
from attacks.prompts.jailbreak import (
    ENCODINGS,
    FRAMINGS,
    LANGUAGES,
    MUTATIONS,
    PAYLOADS,
    jailbreaks,
)
from attacks.prompts.leak import leak_probes


def test_same_seed_same_prompts_other_seed_others() -> None:
    for make in (lambda s: jailbreaks(40, s), lambda s: injections(40, s), lambda s: leak_probes(40, s),
                 lambda s: benign_prompts(40, s)):
        assert make(7) == make(7)
        assert make(7) != make(8)


def test_jailbreaks_are_distinct_compositions_covering_every_part() -> None:
    made = jailbreaks(300, seed=3)
    assert len({j.text for j in made}) == 300  # no repeats before the space of 3360 runs out
    parts = [j.recipe.split("/") for j in made]
    for i, names in enumerate((FRAMINGS, MUTATIONS, ENCODINGS, LANGUAGES)):
        assert {p[i] for p in parts} == set(names)


def test_encoded_payloads_decode_back() -> None:
    for j in jailbreaks(400, seed=1):
        _, mutation, encoding, _ = j.recipe.split("/")
        if mutation != "none":
            continue
        if encoding == "base64":
            blob = j.text.split("follow it: ")[1].split()[0].rstrip(".")
            assert base64.b64decode(blob).decode() in PAYLOADS
        if encoding == "rot13":
            assert any(codecs.encode(p, "rot13") in j.text for p in PAYLOADS)
        if encoding == "reversed":
            assert any(p[::-1] in j.text for p in PAYLOADS)


def test_injections_hide_a_marker_that_echoing_does_not_write() -> None:
    made = injections(60, seed=5)
    assert {i.recipe.split("/")[0] for i in made} == {"direct", "indirect"}
    assert {i.recipe.split("/")[-1] for i in made if i.recipe != "direct"} == {"pasted", "retrieved", "history"}
    for i in made:
        text = "\n".join(m["content"] for m in i.messages)
        assert not SecretDetector(i.marker)(text), "the prompt itself must not hold the joined marker"
        assert SecretDetector(i.marker)(f"Done. {i.marker}")


def test_a_goal_phrase_replaces_the_marker() -> None:
    made = injections(10, seed=5, goal="I have been PWNED")
    assert {i.marker for i in made} == {"I have been PWNED"}
    assert all("I have been PWNED" in "\n".join(m["content"] for m in i.messages) for i in made)
