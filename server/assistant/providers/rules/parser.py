"""Reading a message: splitting it into commands, setting politeness aside, spotting small talk and answers."""

from __future__ import annotations

import re
from typing import cast

from server.assistant.providers.rules.grammar import END_PUNCTUATION, QUOTED, add, match, tidy
from server.assistant.providers.rules.intents import Answer, Intent, Say, Topic
from server.assistant.providers.rules.refs import straighten
from server.assistant.providers.rules.statements import stated_task

_I = re.IGNORECASE

# Whole messages (lowercased, punctuation and apostrophes dropped) that are chat, not commands.
_SMALL_TALK_TABLE = """
help: help | help me | h | commands | what can you do | what do you do | how does this work | usage | how do i use this
help: how do i use you | how can you help | how can you help me | i need help | what can i say | what can i ask | menu
greeting: hi | hello | hey | hiya | yo | howdy | hi there | hello there | hey there | greetings | sup | whats up
greeting: good morning | good afternoon | good evening | morning | hey hey
thanks: thanks | thank you | thx | ty | thanks a lot | thank you so much | thanks so much | cheers | much appreciated
thanks: great thanks | ok thanks | okay thanks | perfect thanks | thanks a bunch
bye: bye | goodbye | see you | see ya | later | good night | cya | bye bye
how_are_you: how are you | how are you doing | hows it going | how is it going | you ok
identity: who are you | what are you | whats your name | are you a bot | are you real
ack: ok | okay | k | cool | great | nice | awesome | perfect | got it | alright | sounds good | good | fine | wow
never_mind: no | nope | nah | never mind | nevermind | cancel | forget it | nothing | no thanks | stop
"""


def _table(text: str) -> dict[str, Topic]:
    table: dict[str, Topic] = {}
    for line in text.strip().splitlines():
        topic, phrases = line.split(":")
        table.update(dict.fromkeys((p.strip() for p in phrases.split("|")), cast(Topic, topic)))
    return table


_SMALL_TALK = _table(_SMALL_TALK_TABLE)

_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "last": -1}
_ANSWER_ID = re.compile(r"(?:task|number|no\.?|item|#)?\s*#?\s*(\d+)", _I)
_ANSWER_ORDINAL = re.compile(rf"(?:the\s+)?({'|'.join(_ORDINALS)})(?:\s+(?:one|task))?", _I)
_ANSWER_YES = frozenset(
    {"yes", "yeah", "yep", "yup", "sure", "correct", "right", "exactly", "that one", "this one", "thats it"}
    | {"yes please", "do it", "go ahead", "yes that one", "that's it", "y"}
)

# Politeness and chatter in front of a command ("ok so could you please ...").
_PREFIX = re.compile(
    r"^(?:(?:hi|hello|hey|ok|okay|so|now|and|also|then|oh|well|alright|great|cool|thanks|thank you|yo|actually|hmm)\b"
    r"[,!.]*\s+"
    r"|(?:please|pls|plz|kindly|just)\s+|(?:can|could|would|will)\s+you\s+(?:please\s+)?"
    r"|(?:i(?:'d|\s+would)\s+like\s+(?:you\s+)?to|i\s+want\s+(?:you\s+)?to|i\s+wanna|let'?s|go\s+ahead\s+and"
    r"|help\s+me)\s+)",
    _I,
)
_SUFFIX = re.compile(r"(?:[,\s]+(?:please|pls|thanks|thank you|for me))+$", _I)
# "I need to ..." states a task, unless it talks about the list itself ("I need to delete task 3").
_OBLIGED = re.compile(
    r"^(?:i\s+(?:really\s+|also\s+|still\s+)?(?:need|have|ought|got)\s+to|i'?ve\s+got\s+to|i\s+gotta|i\s+must"
    r"|i\s+should|gotta|need\s+to|have\s+to|must)\s+",
    _I,
)
_ABOUT_THE_LIST = re.compile(r"\b(?:tasks?|todos?|to-dos?|list)\b|#\d", _I)


def parse(text: str) -> list[Intent]:
    """The intents of one message, in the order they were said; never empty."""
    intents: list[Intent] = []
    for segment in split_actions(straighten(text)):
        intents.extend(_parse_one(segment))
    if len(intents) > 1:  # "hi, add milk": the greeting needs no answer of its own
        intents = [i for i in intents if not (isinstance(i, Say) and i.topic in {"greeting", "ack"})] or intents
    return intents or [Say("unknown")]


# "add milk and add eggs" is two commands; "add milk and eggs" is one task. Only split before a verb,
# or before a new duty: "I paid the bills but I still need to file the receipt".
_SPLIT = re.compile(
    r"(?:\s*[,;]\s*|\.\s+|\s+(?:and|then|also|plus|but|so)\s+)(?:(?:and|then|also|please|but|so)\s+)*"
    r"(?=(?:add|create|delete|remove|complete|mark|show|list|rename|update|change|check\s+off|tick\s+off"
    r"|remind\s+me|what'?s|what\s+is|what\s+are|i\s+(?:still\s+|also\s+)?(?:need|have)\s+to)\b)",
    _I,
)


def split_actions(text: str) -> list[str]:
    quoted = [m.span() for m in QUOTED.finditer(text)]
    cuts = [m for m in _SPLIT.finditer(text) if not any(a < m.start() < b for a, b in quoted)]
    segments, start = [], 0
    for m in cuts:
        segments.append(text[start : m.start()])
        start = m.end()
    segments.append(text[start:])
    return [s for s in (s.strip() for s in segments) if s]


def _parse_one(segment: str) -> list[Intent]:
    raw = tidy(segment)
    if not raw:
        return []
    if said := _small_talk(raw):
        return [said]
    if answer := _answer(raw):
        return [answer]
    raw, obliged = _strip_prefixes(raw)
    if not raw:
        return [Say("greeting")]
    if obliged and not _ABOUT_THE_LIST.search(raw):
        return [add(raw)]
    if (intents := match(raw)) is not None:
        return intents
    if obliged:
        return [add(raw)]
    if said := _small_talk(raw):
        return [said]
    if not segment.rstrip().endswith("?") and (stated := stated_task(raw)):
        return [stated]  # "water the plants every Monday": a task, said without "add"
    return [Say("unknown")]


def _small_talk(raw: str) -> Say | None:
    key = re.sub(r"[^a-z0-9 ]+", "", raw.lower().replace("'", ""))
    topic = _SMALL_TALK.get(re.sub(r"\s+", " ", key).strip())
    return None if topic is None else Say(topic)


def _answer(raw: str) -> Answer | None:
    if m := _ANSWER_ID.fullmatch(raw):
        return Answer("id", int(m[1]))
    if m := _ANSWER_ORDINAL.fullmatch(raw):
        return Answer("ordinal", _ORDINALS[m[1].lower()])
    if raw.lower() in _ANSWER_YES:
        return Answer("yes")
    return None


def _strip_prefixes(raw: str) -> tuple[str, bool]:
    while (stripped := _PREFIX.sub("", raw, count=1)) != raw:
        raw = stripped
    raw = _SUFFIX.sub("", raw).strip().rstrip(END_PUNCTUATION)
    obliged = _OBLIGED.match(raw)
    return (raw[obliged.end() :], True) if obliged else (raw, False)
