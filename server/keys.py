"""How a user's Redis keys and channels are named: one hash tag per user, `{user:42}`.

Redis Cluster hashes only the part of a name between the first `{` and `}`, so a user's event
channel (`{prefix}:{user:42}`) and their rate-limit counters (`...chat_turns/{user:42}/...`)
land in the same slot, on the same shard; different users spread over every shard. A single
Redis ignores the braces.
"""

from __future__ import annotations


def user_tag(user_id: int) -> str:
    """The hash tag of everything that belongs to one user."""
    return f"{{user:{user_id}}}"
