"""Past-tense verbs, for reports like "I paid the bills": which words are one, and the base forms a title uses.

A title says what to do ("Pay the bills"), a report says what was done ("paid the bills"), so a
report fits a title through the verb's base form. Regular verbs are spelled out by rule; since a
rule cannot tell "filed" (file) from "called" (call), every spelling it allows is a candidate and
the task titles decide. Irregular verbs are listed. A lexicon library (lemminflect) would cover
more verbs, but costs numpy and some 70 MB of memory per process for what is a closed list.
"""

from __future__ import annotations

import re

# base: past forms, for verbs a task might start with. Verbs whose past is the base form ("put",
# "read") are reports only after "I".
_IRREGULAR_TABLE = """
blow: blew blown | break: broke broken | bring: brought | build: built | buy: bought | catch: caught
choose: chose chosen | come: came | cut: cut | deal: dealt | dig: dug | draw: drew drawn | drink: drank drunk
drive: drove driven | eat: ate eaten | feed: fed | find: found | fly: flew flown | get: got gotten
give: gave given | go: went gone | grind: ground | grow: grew grown | hang: hung | hide: hid hidden
hold: held | keep: kept | lay: laid | lead: led | leave: left | lend: lent | light: lit | make: made
meet: met | pay: paid | put: put | read: read | rebuild: rebuilt | redo: redid redone | ride: rode ridden
ring: rang rung | run: ran | see: saw seen | sell: sold | send: sent | set: set | sew: sewn | shoot: shot
shut: shut | sing: sang sung | sit: sat | speak: spoke spoken | spend: spent | split: split
spread: spread | stand: stood | sweep: swept | swim: swam swum | take: took taken | teach: taught
tell: told | throw: threw thrown | wake: woke woken | wear: wore worn | wind: wound
withdraw: withdrew withdrawn | write: wrote written | rewrite: rewrote rewritten
"""


def _irregular(table: str) -> dict[str, frozenset[str]]:
    forms: dict[str, frozenset[str]] = {}
    for entry in table.replace("\n", " | ").split("|"):
        if entry.strip():
            base, past = entry.split(":")
            for form in past.split():
                forms[form] = forms.get(form, frozenset()) | {base.strip()}
    return forms


_IRREGULAR = _irregular(_IRREGULAR_TABLE)

NOT_DONE = frozenset(
    {"want", "need", "try", "plan", "mean", "hope", "wish", "decide", "promise", "intend", "expect", "attempt"}
    | {"start", "miss", "skip", "postpone", "delay", "reschedule", "cancel", "fail", "forget", "lose", "be"}
    | {"like", "love", "hate", "enjoy", "prefer", "say", "think", "feel", "hear", "know"}
    | {"add", "create", "delete", "remove", "list", "show", "update", "change", "rename", "mark", "remind"}
    | {"schedule", "note", "save", "log", "record", "undo"}
)
"""Verbs whose past says nothing was finished ("I wanted to", "I forgot", "I liked it"), or the
agent's own commands ("added milk"): these never complete a task."""

_DOUBLED = re.compile(r"([bdgklmnprtvz])\1ed$")


def base_forms(word: str, *, after_i: bool) -> frozenset[str]:
    """The base forms `word` is the past tense of ("paid" -> {"pay"}); empty when it is not a past tense.

    Without "I" in front, a form that is also the base ("read", "put") reads as a command, not a report.
    """
    word = word.lower()
    if word in _IRREGULAR:
        forms = _IRREGULAR[word]
        if not after_i and word in forms:
            return frozenset()
    elif len(word) > 3 and word.endswith("ed") and not word.endswith("eed"):
        forms = frozenset(_regular(word))
    else:
        return frozenset()
    return frozenset() if forms & NOT_DONE else forms


def _regular(word: str) -> set[str]:
    stem = word[:-2]
    forms = {stem, word[:-1]}  # "called" -> call, "filed" -> file: the titles pick the real one
    if word.endswith("ied"):
        forms.add(word[:-3] + "y")  # "tidied"
    if _DOUBLED.search(word):
        forms.add(word[:-3])  # "mopped"
    return forms
