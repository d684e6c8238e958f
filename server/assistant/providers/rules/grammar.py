"""The phrasings of each command: a table of patterns, and the builders that turn a match into intents."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from server.assistant.providers.rules.details import (
    TAGS,
    Details,
    Repeat,
    minutes_of,
    priority_of,
    repeat_of,
    split_details,
    tags_of,
)
from server.assistant.providers.rules.intents import (
    Act,
    Action,
    Add,
    Intent,
    ListTasks,
    Say,
    Status,
    Undo,
)
from server.assistant.providers.rules.refs import (
    ByWords,
    Everything,
    Pronoun,
    Ref,
    Unnamed,
    parse_ref,
    parse_refs,
    words,
)
from server.assistant.providers.rules.verbs import base_forms
from server.assistant.providers.rules.when import COUNT, PHRASE, When
from server.db.models import DESCRIPTION_MAX, TITLE_MAX

QUOTES = "\"'`"
END_PUNCTUATION = ".,!?;: …"
_I = re.IGNORECASE

QUOTED = re.compile(r"(?:^|(?<=\s))[\"'`](.+?)[\"'`](?=$|[\s.,!?;:])")
"""A quoted title: "add 'call mom' to my list". An apostrophe inside a word ("mom's") is not a quote."""


def match(text: str) -> list[Intent] | None:
    """The intents of one command (no politeness left around it), or None if no phrasing fits."""
    for pattern, build in _RULES:
        if (m := pattern.fullmatch(text)) and (intents := build(m)) is not None:
            return intents
    return None


def tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(END_PUNCTUATION).strip()


# --- builders: a regex match -> intents ---------------------------------------------------------


def _act(action: Action, *, default: Ref | None = None) -> Callable[[re.Match[str]], list[Intent]]:
    """Build `action` on the task(s) the `ref` group names, or on `default` when none is named."""

    def build(m: re.Match[str]) -> list[Intent]:
        refs = parse_refs(m.groupdict().get("ref") or "")
        return [Act(action, ref) for ref in refs] or [Act(action, default or Unnamed())]

    return build


def _rename(m: re.Match[str]) -> list[Intent]:
    value = _unquote(m["value"])
    if value.lower() in {"done", "complete", "completed", "finished"}:
        return _act("complete")(m)  # "change task 1 to done"
    return _update(m, title=_title(value))


def _describe(m: re.Match[str]) -> list[Intent]:
    return _update(m, description=_capitalise(_unquote(m["value"])))


def _update(m: re.Match[str], *, title: str | None = None, description: str | None = None) -> list[Intent]:
    if not title and not description:
        return [Say("ask_update")]
    if (title and len(title) > TITLE_MAX) or (description and len(description) > DESCRIPTION_MAX):
        return [Say("too_long")]
    intents = _act("update")(m)
    return [replace(i, title=title, description=description) if isinstance(i, Act) else i for i in intents]


def _ask_update(m: re.Match[str]) -> list[Intent]:
    return [Say("ask_update")]


def _not_done(m: re.Match[str]) -> list[Intent]:
    """ "task 4 isn't done" reopens it; "my tasks aren't done" asks what is pending."""
    if isinstance(parse_ref(m["ref"]), Everything):
        return [ListTasks("pending")]
    return _act("reopen")(m)


def _undo(m: re.Match[str]) -> list[Intent]:
    return [Undo()]


def _cant_undo(m: re.Match[str]) -> list[Intent]:
    return [Say("cant_undo")]


def _finished(m: re.Match[str]) -> list[Intent]:
    """ "I finished the report this morning": when it happened is not part of the task's name."""
    refs = parse_refs(_WHEN.sub("", m["ref"]))
    return [Act("complete", ref) for ref in refs] or [Act("complete", Unnamed())]


def _report(m: re.Match[str]) -> list[Intent] | None:
    """ "I paid the bills": complete the task it describes; None when it is no report of a finished task."""
    verbs = base_forms(m["verb"], after_i=m["i"] is not None)
    said = _WHEN.sub("", m["ref"]).strip()
    if not verbs or _NOT_AN_OBJECT.search(said) or len(said.split()) > REPORT_WORDS:
        return None
    ref = parse_ref(said)
    if not isinstance(ref, ByWords):
        return None  # "I loved it" is no news about the task last mentioned
    forms = frozenset().union(*(words(verb) for verb in verbs))
    return [Act("complete", ByWords(f"{m['verb'].lower()} {said}", ref.words, forms))]


def _list(m: re.Match[str]) -> list[Intent]:
    return [list_intent(m[0])]


def _added(m: re.Match[str]) -> list[Intent]:
    return [add(m["t"] or "")]


def _remind_to(m: re.Match[str]) -> list[Intent]:
    """ "remind me to call the dentist tomorrow at 9": the task, due then, with a reminder then."""
    intent = add(m["t"] or "")
    if isinstance(intent, Add) and intent.details.due is not None and intent.details.remind is None:
        intent = replace(intent, details=replace(intent.details, remind=intent.details.due))
    return [intent]


def _remind_when_to(m: re.Match[str]) -> list[Intent]:
    """ "remind me tomorrow to call mom", "remind me in 20 minutes to check the oven"."""
    intent = add(m["t"])
    if isinstance(intent, Add) and intent.details.due is None:
        when = When(m["when"])
        intent = replace(intent, details=replace(intent.details, due=when, remind=when))
    return [intent]


def _change(**fields: Callable[[re.Match[str]], Any]) -> Callable[[re.Match[str]], list[Intent] | None]:
    """Update the task the `ref` group names (the task last mentioned when none is) with `fields`,
    each a function of the match giving a Details field; None (no match) when one gives None."""

    def build(m: re.Match[str]) -> list[Intent] | None:
        values = {name: make(m) for name, make in fields.items()}
        if any(v is None for v in values.values()):
            return None
        details = Details(**values)
        refs = parse_refs(m.groupdict().get("ref") or "") or [Pronoun()]
        return [Act("update", ref, details=details) for ref in refs]

    return build


def _when(m: re.Match[str]) -> When:
    return When(m["when"])


def _priority(m: re.Match[str]) -> str:
    return priority_of(m["p"])


def _tags(m: re.Match[str]) -> tuple[str, ...]:
    return tags_of(m["tags"])


def _repeat(m: re.Match[str]) -> Repeat | None:
    return repeat_of(m["rule"])


def _minutes(m: re.Match[str]) -> int:
    return minutes_of(m["n"], m["unit"])


# --- listing with filters: "what's due this week", "show high priority tasks" -------------------

_ABOUT_DUE = re.compile(r"\b(?:due|scheduled|planned|agenda|plate|do\s+i\s+have|have\s+i\s+got|coming\s+up)\b", _I)
"""A day or week names due times only in a question about them: "what's left for today?" lists what is pending."""
_WINDOW = re.compile(r"\b(today|tomorrow|tonight|this\s+week|next\s+week|this\s+month)\b", _I)
_FILTER_PRIORITY = re.compile(r"\b(high|low|normal|top)[- ]priority\b|\b(urgent|important)\b", _I)
_FILTER_TAG = re.compile(
    r"#([a-z][\w-]*)|\b(?:tagged|labell?ed|with\s+(?:the\s+)?tag)\s+(?:as\s+|with\s+)?#?([a-z][\w-]*)", _I
)
_FILTER_QUERY = re.compile(
    r"\b(?:about|mentioning|containing|matching|related\s+to|that\s+mentions?|with\s+the\s+words?)\s+(?P<q>.+)$", _I
)
_SEARCH = re.compile(
    r"(?:find|search(?:\s+for)?|look\s+(?:for|up))\s+(?:(?:my|the|all|any)\s+)*(?:(?:tasks?|todos?)\s+)?"
    r"(?:(?:about|with|for|mentioning|containing|matching|called|named|that\s+mention)\s+)?(?:(?:the|a|an|my)\s+)?"
    r"(?P<q>.+)",
    _I,
)
_FILTER_OVERDUE = re.compile(r"\b(?:overdue|late|past\s+due)\b", _I)
_SORT = re.compile(
    r"[,;]?\s*(?:(?:and\s+)?(?:sort(?:ed)?|order(?:ed)?)\s+(?:them\s+)?by|by)\s+"
    r"(?P<key>due(?:\s+date)?|deadline|priority|importance|title|name|date\s+(?:created|added)|creation|newest|oldest)\b",
    _I,
)
_SORT_KEYS = {"due": "due", "deadline": "due", "priority": "priority", "importance": "priority", "title": "title"}
_SORT_KEYS |= {"name": "title"}


def list_intent(text: str) -> ListTasks:
    """A listing, with the filters and the order the sentence asks for."""
    sort = None
    if m := _SORT.search(text):
        sort = _SORT_KEYS.get(m["key"].split()[0].lower(), "created")
        text = text[: m.start()] + text[m.end() :]
    query = None
    if m := _SEARCH.fullmatch(text.strip().rstrip(END_PUNCTUATION)):
        query, text = m["q"].strip(QUOTES), ""
    elif m := _FILTER_QUERY.search(text):
        query = re.sub(r"^(?:the|a|an|my)\s+", "", m["q"].strip(QUOTES + END_PUNCTUATION), flags=_I) or None
        text = text[: m.start()]
    priority = None
    if m := _FILTER_PRIORITY.search(text):
        priority = priority_of(m[1] or m[2])
    tag = None
    if m := _FILTER_TAG.search(text):
        tag = (m[1] or m[2]).lower()
    status = list_status(text)
    overdue = bool(_FILTER_OVERDUE.search(text))
    window = None
    if status != "completed" and _ABOUT_DUE.search(text) and (m := _WINDOW.search(text)):
        window = re.sub(r"\s+", " ", m[1].lower()).replace("tonight", "today")
    if overdue or window:
        status = "pending"
    if window and sort is None:
        sort = "due"
    return ListTasks(status, priority=priority, tag=tag, query=query, overdue=overdue, window=window, sort=sort)


# --- adding: the title is what is left once the filler is gone ----------------------------------

_DESCRIPTION = re.compile(
    r"(?P<t>.+?)\s*(?:,|;|\s-|\swith)\s+(?:a\s+|the\s+)?(?:description|notes?|details)\b\s*(?::|of|saying|that says)?"
    r"\s*(?P<d>.+)$",
    _I,
)
_ADD_FILLER = [
    re.compile(
        r"^(?:(?:a|an|another|the|one|new|more)\s+)*(?:new\s+)?(?:task|todo|to-do|to do|reminder|item|entry|note)s?\b"
        r"(?:\s*[:\-]|\s+(?:to|for|called|named|titled|saying|that says|about|of|that i need to|that i have to)\b)?\s*",
        _I,
    ),
    re.compile(r"^(?:to|that i (?:need|have) to|i need to|i have to|remember to)\s+", _I),
    re.compile(r"^(?:the|a|an)\s+", _I),
]
_ADD_TRAILER = re.compile(
    r"\s+(?:(?:to|on|onto|in|into)\s+(?:my|the)\s+(?:[\w-]+\s+)?(?:list|tasks|todos?|to-?dos?|to-?do list)"
    r"|as\s+an?\s+(?:new\s+)?(?:task|todo|to-do|reminder)|please|for me)$",
    _I,
)


def add(text: str) -> Intent:
    """An `add` of what `text` names, once the filler ("a task to", "to my list") and its details are gone."""
    text = tidy(text)
    description: str | None = None
    if m := _DESCRIPTION.fullmatch(text):
        text, description = m["t"], _capitalise(_unquote(m["d"]))
    if quoted := QUOTED.search(text):  # details only outside the quotes: "add 'call mom tonight' for friday"
        outside, details = split_details(text[: quoted.start()] + " " + text[quoted.end() :], whole=True)
        title = _capitalise(quoted[1].strip())
    else:
        outside, details = split_details(text)
        title = _title(outside)
    if not title:
        return Say("ask_add")
    if len(title) > TITLE_MAX or (description and len(description) > DESCRIPTION_MAX):
        return Say("too_long")
    return Add(title, description or None, details)


def _title(text: str) -> str:
    if m := QUOTED.search(text):
        return _capitalise(m[1].strip())
    for pattern in _ADD_FILLER:
        text = pattern.sub("", text, count=1)
    while (trimmed := _ADD_TRAILER.sub("", text)) != text:
        text = trimmed
    return _capitalise(_unquote(text))


def _unquote(text: str) -> str:
    return text.strip().rstrip(END_PUNCTUATION).strip(QUOTES).strip()


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- listing ------------------------------------------------------------------------------------

_PENDING_WORDS = re.compile(
    r"\b(?:pending|left|remaining|open|outstanding|to do|todo|to-do|unfinished|incomplete|still|next|due|upcoming"
    r"|not (?:yet )?(?:done|complete|completed|finished))\b",
    _I,
)
_DONE_WORDS = re.compile(
    r"\b(?:completed|complete|done|finished|accomplished|achieved|checked off|ticked off)\b"
    r"|\b(?:have|did) i (?:finish|complete|do|accomplish|achieve|get done)\b",
    _I,
)
_NOT_DONE = re.compile(r"\bnot (?:yet )?(?:done|complete|completed|finished)\b", _I)


def list_status(text: str) -> Status:
    pending = bool(_PENDING_WORDS.search(text))
    done = bool(_DONE_WORDS.search(text)) and not _NOT_DONE.search(text)
    if pending == done:
        return "all"
    return "pending" if pending else "completed"


_TASKY = (
    r"(?=.*\b(?:tasks?|todos?|to-dos?|list|pending|left|remaining|open|outstanding|complete|completed|done|finished"
    r"|finish|accomplished|plate|agenda|to do|next|due|overdue|late|unfinished|incomplete|urgent|priority|tagged"
    r"|today|tomorrow|tonight|this week|next week|scheduled)\b)"
)

# --- reports: "I paid the bills" -----------------------------------------------------------------

REPORT_WORDS = 6
"""A report names one task; a longer sentence is telling something else."""
_WHEN = re.compile(
    r"(?:\s+(?:yesterday|today|tonight|earlier(?:\s+today)?|this\s+(?:morning|afternoon|evening|week)"
    r"|last\s+(?:night|week)|just\s+now|already|finally|at\s+last|on\s+time))+$",
    _I,
)
_NOT_AN_OBJECT = re.compile(
    r"[,;:]|^to\s+(?!(?:the|a|an|my|our|his|her|their|your)\b)"
    r"|\b(?:but|because|though|although|so|if|when|while|until|need|needs|must|should|will|would|could|can"
    r"|gonna|going|want|wants|not|never|yet)\b|n'?t\b",
    _I,
)
"""What a plain object has not: a clause ("but ...", "so ..."), a wish or duty, a negation, an infinitive."""

# --- the table: first match wins, so specific phrasings come before general ones ----------------

_VERB_DONE = r"(?:complete|completed|done|finished|checked)"
_ACT_DELETE = r"(?:delete|remove|cancel|drop|erase|discard|scrap|trash|get rid of|throw away|throw out|kill|nuke|bin)"
_LIST_SUFFIX = r"(?:\s+(?:from|off)\s+(?:my|the)\s+(?:[\w-]+\s+)?(?:list|tasks|todos?|to-?dos?))?"
_TO = r"\s*(?:\s(?:to|into|as)\s|:|=)\s*"
_UNDONE = (
    r"(?:not\s+(?:yet\s+)?(?:done|complete|completed|finished|checked(?:\s+off)?)|incomplete|undone|uncompleted"
    r"|unfinished|unchecked|pending|open|active|to\s*-?\s*do)(?:\s+again)?"
)
_LIST_NAME = r"(?:my|the)\s+(?:[\w-]+\s+)?(?:list|tasks|todos?|to-?dos?|to-?do list)"

_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], list[Intent] | None]]] = [
    (re.compile(pattern, _I), build)
    for pattern, build in [
        # schedule, priority, tags, reminders of a task: before the renames and adds they look like
        (
            rf"(?:move|reschedule|postpone|push(?:\s+back)?|defer|delay|shift)\s+(?P<ref>.+?)\s+(?:to|until|till|for)"
            rf"\s+(?P<when>{PHRASE})",
            _change(due=_when),
        ),
        (
            rf"(?:change|set|update|move)\s+(?:the\s+)?(?:due\s+date|deadline|due\s+time)\s+(?:of|for|on)\s+"
            rf"(?P<ref>.+?)\s+(?:to|as|for)\s+(?P<when>{PHRASE})",
            _change(due=_when),
        ),
        (rf"make\s+(?P<ref>.+?)\s+due\s+(?:on\s+|by\s+|at\s+)?(?P<when>{PHRASE})", _change(due=_when)),
        (
            rf"(?!(?:what|which|anything|is|are|how)\b)(?P<ref>.+?)\s+(?:is|'s)\s+(?:now\s+)?due\s+(?:on\s+|by\s+|at\s+)?"
            rf"(?P<when>{PHRASE})",
            _change(due=_when),
        ),
        (
            r"(?:make|mark|set|flag)\s+(?P<ref>.+?)\s+(?:as\s+|to\s+)?(?:an?\s+)?(?P<p>high|top|low|normal|medium)"
            r"[- ]priority",
            _change(priority=_priority),
        ),
        (r"(?:make|mark|flag)\s+(?P<ref>.+?)\s+(?:as\s+)?(?P<p>urgent|important)", _change(priority=_priority)),
        (
            r"(?:set|change|make)\s+(?:the\s+)?priority\s+(?:of|for|on)\s+(?P<ref>.+?)\s+(?:to\s+)?"
            r"(?P<p>high|low|normal|medium)",
            _change(priority=_priority),
        ),
        (r"(?:prioriti[sz]e)\s+(?P<ref>.+)", _change(priority=lambda m: "high")),
        (r"(?:de-?prioriti[sz]e)\s+(?P<ref>.+)", _change(priority=lambda m: "low")),
        (rf"(?:untag|remove\s+(?:the\s+)?tags?)\s+(?P<tags>{TAGS})\s+from\s+(?P<ref>.+)", _change(remove_tags=_tags)),
        (rf"(?:untag)\s+(?P<ref>.+?)\s+(?P<tags>{TAGS})", _change(remove_tags=_tags)),
        (rf"(?:add\s+(?:the\s+)?tags?|tag)\s+(?P<tags>{TAGS})\s+(?:to|on)\s+(?P<ref>.+)", _change(tags=_tags)),
        (rf"(?:tag|label)\s+(?P<ref>.+?)\s+(?:as\s+|with\s+)?(?P<tags>{TAGS})", _change(tags=_tags)),
        (r"make\s+(?P<ref>.+?)\s+(?:repeat|recur)\s+(?P<rule>.+)", _change(repeat=_repeat)),
        (
            r"(?:repeat|recur)\s+(?P<ref>.+?)\s+(?P<rule>(?:every|each|daily|nightly|weekly|monthly|yearly|annually|on"
            r"|biweekly|fortnightly|weekdays)\b.*)",
            _change(repeat=_repeat),
        ),
        (
            r"(?!(?:add|create|new|remind|put|schedule|set|make|save)\b)(?P<ref>.+?)\s+(?:should\s+)?(?:repeats?|recurs?)"
            r"\s+(?P<rule>.+)",
            _change(repeat=_repeat),
        ),
        (
            rf"snooze(?:\s+(?P<ref>.+?))?(?:\s+(?:for|by))?\s+(?P<n>{COUNT})\s+(?P<unit>minutes?|mins?|hours?|hrs?)",
            _change(snooze=_minutes),
        ),
        (r"snooze(?:\s+(?P<ref>.+?))?", _change(snooze=lambda m: 10)),
        (
            r"(?:dismiss|cancel|remove|delete|drop|turn\s+off|clear|stop)\s+(?:the\s+|my\s+|that\s+|this\s+)?reminder"
            r"(?:\s+(?:for|on|of|about)\s+(?P<ref>.+))?",
            _change(dismiss=lambda m: True),
        ),
        (r"(?:dismiss|silence)\s+(?P<ref>.+)", _change(dismiss=lambda m: True)),
        (
            r"(?:remove|clear|delete|drop|unset)\s+(?:the\s+)?(?:due\s+date|deadline|due\s+time|date)"
            r"(?:\s+(?:from|of|on|for)\s+(?P<ref>.+))?",
            _change(clear_due=lambda m: True),
        ),
        (
            r"(?:stop\s+repeating|don'?t\s+repeat|no\s+longer\s+repeat|never\s+repeat)(?:\s+(?P<ref>.+?))?(?:\s+any\s*more)?",
            _change(stop_repeat=lambda m: True),
        ),
        (
            rf"remind\s+me(?:\s+about\s+(?P<ref>.+?))?\s+again\s+in\s+(?P<n>{COUNT})\s+(?P<unit>minutes?|mins?|hours?|hrs?)",
            _change(snooze=_minutes),
        ),
        (
            rf"remind\s+me(?:\s+(?:about|of)\s+(?P<ref>.+?))?\s+(?P<n>{COUNT})\s+(?P<unit>minutes?|mins?|hours?|hrs?|days?)"
            r"\s+(?:before(?:hand)?|early|earlier|ahead)",
            _change(remind_before=_minutes),
        ),
        (
            rf"remind\s+me\s+(?:about|of)\s+(?P<ref>.+?)\s+(?:(?:at|on)\s+)?(?P<when>{PHRASE})",
            _change(remind=_when),
        ),
        (rf"remind\s+me\s+(?:(?:at|on)\s+)?(?P<when>{PHRASE})", _change(remind=_when)),
        (
            rf"remind\s+me\s+(?:(?:at|on)\s+)?(?P<when>{PHRASE})\s+(?:to|that\s+i\s+(?:need|have)\s+to)\s+(?P<t>.+)",
            _remind_when_to,
        ),
        (
            rf"(?:set|add|create|put)\s+(?:a\s+)?reminder\s+(?:for|on|to)\s+(?P<ref>.+?)\s+(?:(?:at|on|for)\s+)?"
            rf"(?P<when>{PHRASE})",
            _change(remind=_when),
        ),
        # listing by filter or order alone: "sort by due date", "find tasks about the report"
        (r"(?:sort|order)\b.*", _list),
        (
            r"(?:(?:all|my|the|any)\s+)*(?:(?:high|low|normal|top)[- ]priority|urgent|important|overdue|late|#[\w-]+)"
            r"\s+(?:tasks?|todos?|to-?dos?|items|ones)\b.*",
            _list,
        ),
        (
            r"(?:(?:all|my|the|any)\s+)*(?:tasks?|todos?|to-?dos?)\s+(?:tagged|labell?ed|with|about|due|mentioning"
            r"|containing|matching|sorted|ordered|that|which|for)\b.*",
            _list,
        ),
        (r"(?:find|search|look\s+for|look\s+up)\b.*", _list),
        # reopen: before "mark ... done" reads "mark it as not done" as completing
        (rf"mark\s+(?:as\s+)?{_UNDONE}", _act("reopen", default=Pronoun())),
        (
            rf"(?:mark|set|change|turn|switch|move)\s+(?P<ref>.+?)\s+(?:back\s+)?(?:(?:as|to|into)\s+)?{_UNDONE}",
            _act("reopen"),
        ),
        (rf"put\s+(?P<ref>.+?)\s+back(?:\s+(?:on|in|onto)\s+{_LIST_NAME})?", _act("reopen")),
        (r"(?:reopen|re-open|uncheck|untick|uncomplete|unmark)(?:\s+(?P<ref>.+))?", _act("reopen", default=Pronoun())),
        (r"undo(?:\s+(?:that|it|this|(?:(?:the|my)\s+)?last\s+(?:one|change|thing|action|step)))?", _undo),
        (r"undo\b.*", _cant_undo),
        # complete: the anchored forms first, so "check off" is never read as a listing
        (rf"mark\s+(?P<ref>.+?)\s+(?:as\s+)?{_VERB_DONE}", _act("complete")),
        (rf"mark\s+(?:as\s+)?{_VERB_DONE}(?:\s+(?P<ref>.+))?", _act("complete", default=Pronoun())),
        (r"(?:check|tick|cross|mark)\s+off\s+(?P<ref>.+?)(?:\s+(?:my|the)\s+list)?", _act("complete")),
        (r"(?:check|tick|cross|mark)\s+(?P<ref>.+?)\s+off(?:\s+(?:my|the)\s+list)?", _act("complete")),
        # list
        (r"(?:show|list|display)\b.*", _list),
        (rf"(?:see|view|give me|tell me|read|pull up|bring up|check)\b{_TASKY}.*", _list),
        (rf"(?:what(?:'?s)?|which|how many|do i|have i|did i|anything|any|is there|are there)\b{_TASKY}.*", _list),
        (
            r"(?:(?:all|my|the)\s+)*(?:tasks?|todos?|to-?dos?|(?:todo |to-do |task )?list|pending|completed|open"
            r"|remaining)(?:\s+(?:tasks|items|ones|list))?",
            _list,
        ),
        # update: descriptions, then titles, then "change task 2" with nothing to change it to
        (
            rf"(?:change|update|edit|set|modify|replace)\s+(?:the\s+)?(?:description|details|notes?|desc)\s+(?:of|for|on)"
            rf"\s+(?P<ref>.+?){_TO}(?P<value>.+)",
            _describe,
        ),
        (
            rf"(?:change|update|edit|set|modify)\s+(?P<ref>.+?)(?:'s)?\s+(?:description|details|notes?|desc){_TO}"
            r"(?P<value>.+)",
            _describe,
        ),
        (
            r"(?:add|put|attach|write)\s+(?:a\s+|the\s+)?(?:description|details|notes?)\s+(?:to|for|on)\s+(?P<ref>.+?)"
            r"\s*(?::|\s(?:saying|that says|reading)\s)\s*(?P<value>.+)",
            _describe,
        ),
        (
            rf"(?:change|update|edit|set|modify)\s+(?:the\s+)?(?:title|name)\s+(?:of|for)\s+(?P<ref>.+?){_TO}(?P<value>.+)",
            _rename,
        ),
        (rf"(?:change|update|edit|set|modify)\s+(?P<ref>.+?)(?:'s)?\s+(?:title|name){_TO}(?P<value>.+)", _rename),
        (rf"(?:change|rename|update|edit|retitle|modify)\s+(?P<ref>.+?){_TO}(?P<value>.+)", _rename),
        (r"(?:change|rename|update|edit|modify)(?:\s+.*)?", _ask_update),
        # delete
        (rf"{_ACT_DELETE}(?:\s+(?P<ref>.+?))?{_LIST_SUFFIX}", _act("delete")),
        (r"take\s+(?P<ref>.+?)\s+off(?:\s+(?:my|the)\s+(?:[\w-]+\s+)?(?:list|tasks))?", _act("delete")),
        # complete: verbs in front, "I finished ...", then a bare "done"
        (r"(?:complete|finish|close)\s+(?P<ref>.+)", _act("complete")),
        (
            r"(?:i(?:'ve|'m|\s+have|\s+am)?\s+)?(?:just\s+)?(?:finished|completed|done with|done|did)\s+"
            r"(?!not\b|never\b)(?P<ref>.+)",
            _finished,
        ),
        (r"(?:all\s+)?(?:done|finished|complete)", _act("complete", default=Pronoun())),
        # add
        (r"remind\s+me(?:\s+(?:to|that i (?:need|have) to|that|about|of)\s+(?P<t>.+))?", _remind_to),
        (r"(?:don'?t|do not|dont)\s+(?:let\s+me\s+)?forget\s+(?:to\s+|about\s+)?(?P<t>.+)", _added),
        (
            r"(?:remember|note to self|jot down|write down|make a note)(?:\s+(?:to|that i need to|that|of|about))?"
            r"\s*:?\s+(?P<t>.+)",
            _added,
        ),
        (r"make\s+sure\s+(?:i\s+|to\s+)(?P<t>.+)", _added),
        (
            r"(?:make|set up|set|put)\s+"
            r"(?P<t>(?:a\s+|an\s+|another\s+)?(?:new\s+)?(?:task|todo|to-do|reminder|note)\b.*)",
            _added,
        ),
        (r"put\s+(?P<t>.+?)\s+(?:on|in|onto)\s+(?:my|the)\s+(?:[\w-]+\s+)?(?:list|tasks|todos?)", _added),
        (r"(?:add|create|new|save|insert|log|record|schedule)\b\s*(?P<t>.*)", _added),
        (r"(?:todo|to-do|to do|task|new task|reminder)\s*[:\-]\s*(?P<t>.+)", _added),
        # "I paid the bills", "just called mom": a past tense and what it was done to
        (
            r"(?:(?P<i>i)(?:'?ve|\s+have)?\s+)?(?:(?:just|already|finally|also|actually)\s+)*"
            r"(?P<verb>[a-z]+)\s+(?P<ref>.+)",
            _report,
        ),
        # "task 4 isn't done": after the listings, so "what's not done?" still lists
        (
            r"(?!(?:i|i'm|im|we|you)\b)(?P<ref>(?:\S+\s+){0,6}?\S+?)\s+(?:still\s+)?(?:(?:is|are|was|has|have)\s*)?"
            r"(?:still\s+)?(?:n'?t|not)\s+(?:been\s+)?(?:yet\s+)?(?:done|complete|completed|finished|checked\s+off)"
            r"(?:\s+yet)?",
            _not_done,
        ),
        # "task 3 is done", "groceries done": last, as the widest complete phrasing
        (
            rf"(?P<ref>(?:\S+\s+){{0,6}}?\S+?)\s+(?:is\s+|are\s+|was\s+|has been\s+)?(?:now\s+|all\s+)?{_VERB_DONE}",
            _act("complete"),
        ),
    ]
]
