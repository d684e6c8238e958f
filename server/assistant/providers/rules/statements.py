"""A task said without a command word: "water the plants every Monday", "dentist appointment tomorrow at 3pm".

When no command phrasing fits a message, it is still a task if it reads as one: an imperative or a
noun phrase that carries a schedule detail (a time, a date, a repeat, a priority word or a tag).
Without such a detail it is chat ("the weather is nice"). With one, it is still chat when it has a
subject or a verb of being ("I'm busy tomorrow", "the match is on Friday"), asks something ("what
about Monday?"), is a pleasantry ("have a nice day tomorrow", "see you on Monday") or hedges
("maybe tomorrow"). The other commands come first, so "what's due tomorrow" stays a question and
"I paid the bills yesterday" a report.
"""

from __future__ import annotations

import re

from server.assistant.providers.rules.grammar import add
from server.assistant.providers.rules.intents import Add
from server.assistant.providers.rules.refs import ByWords, parse_ref

_I = re.IGNORECASE

_NOT_A_TASK_START = re.compile(
    # questions
    r"^(?:what|when|where|who|whom|whose|why|how|which|whats|hows)\b"
    r"|^(?:is|are|am|was|were|do|does|did|can|could|will|would|shall|should|may|might|have|has|had)\s+"
    r"(?:i|you|we|they|he|she|it|there|anyone|anybody|someone|somebody)\b"
    # a subject: a statement about someone, not a task
    r"|^(?:i|i'm|im|i'll|i'd|i've|you|you're|we|we're|we'll|they|they're|he|she|it|it's|its|there|there's"
    r"|someone|somebody|everyone|everybody|nobody)\b"
    # pleasantries
    r"|^(?:see\s+(?:you|ya)|talk\s+(?:to\s+you\s+)?(?:soon|later|tomorrow)|catch\s+you|have\s+(?:a|an)\s+"
    r"(?:nice|good|great|lovely|wonderful|fun|safe)|have\s+fun|enjoy\s+(?:your|the)|good\s+(?:luck|job|night"
    r"|morning|afternoon|evening)|happy\s+(?:new\s+year|holidays|weekend|friday|monday)|merry\s+christmas"
    r"|thanks|thank\s+you|sorry|welcome|bye|goodbye|hello|hi|hey)\b"
    # hedges, answers and words that only qualify something said before
    r"|^(?:maybe|perhaps|probably|possibly|not|never|no|nope|yes|yeah|yep|ok|okay|sure|fine|cool|great|nice"
    r"|very|so|really|too|quite|pretty|super|same|also|still|again|always|sometimes|usually|definitely"
    r"|absolutely|totally|both|either|neither|sounds|looks|seems|feels|only|even|just|already|then|now|later)\b"
    # a preposition or conjunction: the rest of a sentence, not a task's name
    r"|^(?:for|to|with|about|from|at|in|on|by|and|or|but|so|because|if|unless|than|like|as|of|until|till)\b",
    _I,
)
_BEING = re.compile(
    r"\b(?:is|are|am|was|were|isn'?t|aren'?t|wasn'?t|weren'?t|been|being)\b"
    r"|\b(?:it|that|there|what|he|she|this|who|here)'s\b|'re\b|'m\b|'ll\b|'d\b",
    _I,
)
"""A verb of being: the message says how something is, it asks for nothing to be done."""
_ABOUT_THE_DAY = re.compile(
    r"(?:(?:what|such)\s+)?(?:an?\s+)?(?:(?:very|so|really)\s+)?(?:(?:nice|good|great|lovely|beautiful|busy|long|hard"
    r"|tough|rough|bad|awful|terrible|crazy|big|fun|sunny|rainy|cold|hot|warm|quiet|slow)\s+)?"
    r"(?:day|week|weekend|morning|afternoon|evening|night|weather|time|rain|snow|sun|sunshine|storms?|showers?)",
    _I,
)
"""What a title about the day itself looks like: "nice weather today", "busy day tomorrow", "long week"."""


def stated_task(text: str) -> Add | None:
    """The task `text` states without a command word, or None when it does not read as one.

    `text` is one command, tidied and without politeness around it, that no phrasing fits.
    """
    if _NOT_A_TASK_START.search(text) or _BEING.search(text):
        return None
    intent = add(text)
    if not isinstance(intent, Add):
        return None
    details = intent.details
    if not (details.due or details.repeat or details.priority or details.tags or details.remind):
        return None  # no schedule detail: chat, not a task
    title = intent.title
    if not re.search(r"[a-z]{2}", title, _I) or _ABOUT_THE_DAY.fullmatch(title) or _NOT_A_TASK_START.search(title):
        return None  # "nice weather today"; "tomorrow at 5pm" leaves "at 5pm", no task's name
    if not isinstance(parse_ref(title), ByWords):
        return None  # "task 3 tomorrow", "it on Friday": about a task there is, not a new one
    return Add(intent.title, intent.description, details, stated=True)
