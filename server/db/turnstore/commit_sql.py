"""The turn's one statement per round on PostgreSQL, built in three shapes: accepts only, finishes only, both.

Accepting a batch of messages: lock the users' rows, in id order; take each message's seqs;
register its turn (the unique key on `turns.conversation_id` answers "busy"); create or touch
the conversation; insert the message and its two events (their JSON spliced with the new
numbers); bump the users' seqs; and return what the ack and the reply need, the conversation's
history included. Finishing a batch of turns stores the replies, their two events, and frees the
conversations. A round that holds both does both in one statement, under one lock of each user.

Why three shapes: PostgreSQL initialises every part of a statement's plan, and runs every
data-modifying part, on each execution, whether or not its arrays hold anything; most rounds
hold only accepts or only finishes, and paid for the other half too (a third of the statement's
CPU, `bench/README.md`).

One subtlety: a statement reads the database as of its start (READ COMMITTED), but it may wait
for a user's row lock while another transaction of that user commits. Every writer bumps the
user's `last_seq`, so comparing the locked row's `last_seq` with the one the statement saw tells
whether anything of the user changed meanwhile; such a message is left untouched and comes back
as `retry`, to run again on fresh data (rare: two writers of one user at the same instant).

Parameters are written `$name` and numbered per shape (`build`), as a prepared statement must
use every number it declares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every look-up is written so that the prepared statement's generic plan, which cannot know how many
# rows the arrays hold, still probes indexes (`= ANY(array)`, LATERAL ... LIMIT 1) instead of
# hash-joining over a sequential scan (of messages: 7,000 rows read per turn at 500 turns/s; of
# conversations: all of them, twice per turn).

_ACCEPT_REQUESTS = """
a_req AS MATERIALIZED (
    SELECT r.ord - 1 AS ord, r.user_id, r.conversation_id, r.title, r.client_msg_id, r.turn_id, r.content,
           r.created_at, $m0::text AS m0, $m1::text AS m1, $m2::text AS m2, $m3::text AS m3, r.m4,
           $s0::text AS s0, r.s1, $s2::text AS s2
    FROM unnest(
        $a_user::int[], $a_conversation::int[], $a_title::text[], $a_client_msg_id::text[], $a_turn::text[],
        $a_content::text[], $a_created::timestamptz[], $a_m4::text[], $a_s1::text[]
    ) WITH ORDINALITY AS r(user_id, conversation_id, title, client_msg_id, turn_id, content, created_at, m4, s1, ord)
)"""

_FINISH_REQUESTS = """
f_req AS MATERIALIZED (
    SELECT r.ord - 1 AS ord, r.user_id, r.turn_id, r.content, r.status, r.created_at,
           $m0::text AS m0, $m1::text AS m1, $m2::text AS m2, $m3::text AS m3, r.m4, $e0::text AS e0, r.e1, r.e2
    FROM unnest(
        $f_user::int[], $f_turn::text[], $f_content::text[], $f_status::text[], $f_created::timestamptz[],
        $f_m4::text[], $f_e1::text[], $f_e2::text[]
    ) WITH ORDINALITY AS r(user_id, turn_id, content, status, created_at, m4, e1, e2, ord)
)"""

# Every user of the round locked at once, in id order: one lock order for every writer.
_LOCKED = """
locked AS MATERIALIZED (
    SELECT u.id, u.last_seq, u.running_turns, u.timezone FROM users u
    WHERE u.id = ANY({users}) ORDER BY u.id FOR UPDATE
)"""

_ACCEPT = """
seen AS MATERIALIZED (
    SELECT u.id, u.last_seq FROM users u WHERE u.id = ANY($a_user::int[])
),
dupe AS MATERIALIZED (
    SELECT r.ord, m.id, m.seq, m.conversation_id, m.turn_id
    FROM a_req r CROSS JOIN LATERAL (
        SELECT id, seq, conversation_id, turn_id FROM messages
        WHERE user_id = r.user_id AND client_msg_id = r.client_msg_id LIMIT 1
    ) m
),
cand AS MATERIALIZED (
    SELECT r.*, l.id IS NOT NULL AS user_exists, l.last_seq AS base, l.timezone,
           l.last_seq IS NOT DISTINCT FROM s.last_seq AS fresh,
           coalesce(l.running_turns < $max_concurrent, false) AS under_limit,
           d.ord IS NOT NULL AS duplicate
    FROM a_req r
    LEFT JOIN locked l ON l.id = r.user_id
    LEFT JOIN seen s ON s.id = r.user_id
    LEFT JOIN dupe d ON d.ord = r.ord
),
go AS MATERIALIZED (
    SELECT c.*, nextval('{messages_seq}'::regclass)::int AS message_id,
           CASE WHEN c.conversation_id IS NULL THEN nextval('{conversations_seq}'::regclass)::int END AS new_id
    FROM cand c
    WHERE c.user_exists AND c.fresh AND c.under_limit AND NOT c.duplicate
      AND (c.conversation_id IS NULL OR coalesce((
          SELECT true FROM conversations v WHERE v.id = c.conversation_id AND v.user_id = c.user_id LIMIT 1), false))
),
new_conv AS (
    INSERT INTO conversations (id, user_id, title, created_at, updated_at)
    SELECT new_id, user_id, title, created_at, created_at FROM go WHERE new_id IS NOT NULL
),
started AS (
    INSERT INTO turns (turn_id, user_id, conversation_id, client_msg_id, message_id, seq, worker_id, started_at)
    SELECT turn_id, user_id, coalesce(conversation_id, new_id), client_msg_id, message_id, base + 1, $worker,
           created_at
    FROM go
    ON CONFLICT (conversation_id) DO NOTHING
    RETURNING turn_id, conversation_id
),
a_ok AS MATERIALIZED (
    SELECT g.*, s.conversation_id AS cid,
           g.m0 || (g.base + 1) || g.m1 || s.conversation_id || g.m2 || g.message_id
               || g.m3 || s.conversation_id || g.m4 AS message_frame,
           g.s0 || (g.base + 2) || g.s1 || s.conversation_id || g.s2 AS second_frame
    FROM go g JOIN started s USING (turn_id)
)"""

# A turn that is no longer registered (ended elsewhere) writes nothing.
_FINISH = """
ended AS (
    DELETE FROM turns t USING f_req r, locked l
    WHERE t.turn_id = ANY($f_turn::text[]) AND t.turn_id = r.turn_id AND l.id = r.user_id AND t.user_id = r.user_id
    RETURNING t.turn_id, t.conversation_id
),
f_ok AS MATERIALIZED (
    SELECT f.*, e.conversation_id AS cid, l.last_seq AS base,
           nextval('{messages_seq}'::regclass)::int AS message_id
    FROM f_req f JOIN ended e USING (turn_id) JOIN locked l ON l.id = f.user_id
),
f_framed AS MATERIALIZED (
    SELECT o.*,
           o.m0 || (o.base + 1) || o.m1 || o.cid || o.m2 || o.message_id || o.m3 || o.cid || o.m4 AS message_frame,
           o.e0 || (o.base + 2) || o.e1 || o.message_id || o.e2 AS second_frame
    FROM f_ok o
)"""

# The writes both halves make, each a UNION ALL of the halves present.
_MESSAGES = (
    "msg AS (\n"
    "    INSERT INTO messages (id, conversation_id, user_id, role, content, client_msg_id, status, turn_id, seq,"
    " created_at)\n    {rows}\n)"
)
_MESSAGES_A = (
    "SELECT message_id, cid, user_id, 'user', content, client_msg_id, NULL, turn_id, base + 1, created_at FROM a_ok"
)
_MESSAGES_F = (
    "SELECT message_id, cid, user_id, 'assistant', content, NULL, status, turn_id, base + 1, created_at FROM f_framed"
)

_TOUCHED = """
touched AS (
    UPDATE conversations v SET updated_at = t.created_at
    FROM ({rows}) t
    WHERE v.id = ANY(ARRAY(SELECT cid FROM ({rows}) k)) AND v.id = t.cid
)"""
_TOUCHED_A = "SELECT cid, created_at FROM a_ok WHERE new_id IS NULL"
_TOUCHED_F = "SELECT cid, created_at FROM f_framed"

_EVENTS = "ev AS (\n    INSERT INTO events (user_id, seq, type, frame, created_at)\n    {rows}\n)"
_EVENTS_A = (
    "SELECT user_id, base + 1, 'message', message_frame, created_at FROM a_ok"
    " UNION ALL SELECT user_id, base + 2, 'turn.start', second_frame, created_at FROM a_ok"
)
_EVENTS_F = (
    "SELECT user_id, base + 1, 'message', message_frame, created_at FROM f_framed"
    " UNION ALL SELECT user_id, base + 2, 'turn.end', second_frame, created_at FROM f_framed"
)

_BUMPED = """
bumped AS (
    UPDATE users u SET last_seq = u.last_seq + 2, running_turns = greatest(u.running_turns + d.delta, 0)
    FROM ({rows}) d
    WHERE u.id = ANY({users}) AND u.id = d.user_id
)"""
_BUMPED_A = "SELECT user_id, 1 AS delta FROM a_ok"
_BUMPED_F = "SELECT user_id, -1 AS delta FROM f_framed"

_RESULT_A = """
SELECT 'a' AS part, c.ord,
       CASE WHEN c.duplicate THEN 'duplicate'
            WHEN NOT c.user_exists THEN 'not_found'
            WHEN NOT c.fresh THEN 'retry'
            WHEN NOT c.under_limit THEN 'limited'
            WHEN o.ord IS NOT NULL THEN 'accepted'
            WHEN g.ord IS NOT NULL THEN 'busy'
            ELSE 'not_found' END AS status,
       coalesce(o.cid, d.conversation_id) AS conversation_id,
       coalesce(o.message_id, d.id) AS message_id,
       coalesce(o.base + 1, d.seq) AS seq,
       d.turn_id AS original_turn_id,
       o.message_frame, o.second_frame, o.timezone,
       CASE WHEN o.ord IS NOT NULL AND o.new_id IS NULL THEN (
           SELECT coalesce(json_agg(json_build_array(h.role, h.content, h.status, h.tool_call) ORDER BY h.id), '[]')
           FROM (SELECT id, role, content, status, tool_call FROM messages
                 WHERE conversation_id = o.cid ORDER BY id DESC LIMIT $history_limit) h
       )::text END AS history
FROM cand c
LEFT JOIN go g ON g.ord = c.ord
LEFT JOIN a_ok o ON o.ord = c.ord
LEFT JOIN dupe d ON d.ord = c.ord"""

_RESULT_F = """
SELECT 'f' AS part, r.ord, NULL::text AS status, NULL::int AS conversation_id, f.message_id, f.base + 1 AS seq,
       NULL::text AS original_turn_id, f.message_frame, f.second_frame, NULL::text AS timezone, NULL::text AS history
FROM f_req r LEFT JOIN f_framed f ON f.ord = r.ord"""

_PARAMETER = re.compile(r"\$([a-z][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    parameters: tuple[str, ...]
    """The names of $1, $2, ...: what to pass, in order."""


def build(*, accepts: bool, finishes: bool, messages_seq: str, conversations_seq: str) -> Statement:
    """The statement of a round with accepts, finishes or both (`messages_seq`: the sequences' names)."""
    assert accepts or finishes

    def both(accept_rows: str, finish_rows: str, *, joiner: str = "\nUNION ALL ") -> str:
        return joiner.join(rows for rows, present in ((accept_rows, accepts), (finish_rows, finishes)) if present)

    users = both("$a_user::int[]", "$f_user::int[]", joiner=" || ")
    parts = [
        *([_ACCEPT_REQUESTS] if accepts else []),
        *([_FINISH_REQUESTS] if finishes else []),
        _LOCKED.replace("{users}", users),
        *([_ACCEPT] if accepts else []),
        *([_FINISH] if finishes else []),
        _MESSAGES.replace("{rows}", both(_MESSAGES_A, _MESSAGES_F)),
        _TOUCHED.replace("{rows}", both(_TOUCHED_A, _TOUCHED_F)),
        _EVENTS.replace("{rows}", both(_EVENTS_A, _EVENTS_F)),
        _BUMPED.replace("{rows}", both(_BUMPED_A, _BUMPED_F)).replace("{users}", users),
    ]
    text = "WITH " + ",".join(parts) + "\n" + both(_RESULT_A, _RESULT_F)
    text = text.replace("{messages_seq}", messages_seq).replace("{conversations_seq}", conversations_seq)
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return Statement(_PARAMETER.sub(number, text), tuple(names))
