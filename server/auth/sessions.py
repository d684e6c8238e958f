"""Sessions you can end: the one check every surface runs on a token, refresh rotation, and ending sessions everywhere.

The check (`Sessions.authenticate`, used by REST, the WebSocket and MCP) is "a valid access token
whose session still exists and belongs to its subject". Asking the database on every request
would cost a round trip each, so every worker keeps a `SessionCache`: what it learnt of a session
(alive, with its user, or ended) for `SESSION_CACHE_SECONDS`. Ending a session deletes its row,
then announces it on the broker's control channel, which every worker hears: each one marks the
session ended in its cache and closes its sockets of that session with 4401, at once.

If the broker is away, the announcement reaches only the worker that ended the session. The
others keep accepting the session's access tokens until their cache entry runs out (at most
`SESSION_CACHE_SECONDS`), then ask the database; their sockets of that session are closed when
the broker is back (each socket re-checks its session on reconnect) or, at the latest, when its
access token expires, since refreshing needs the session.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from server import metrics
from server.auth.audit import AuditLog
from server.auth.tokens import TokenClaims, TokenCodec, TokenPair
from server.db import sessions as queries
from server.db.engine import Sessionmaker
from server.db.models import DEVICE_MAX, utcnow
from server.errors import AuthError
from server.realtime.hub import Hub

logger = logging.getLogger(__name__)

ENDED = -1
"""The cache's mark for a session known to be gone (user ids are positive)."""
ACTIVITY_EVERY = 60.0
"""Seconds between writes of `last_used_at` from request traffic: at most one UPDATE a minute per worker."""
PRUNE_EVERY = 3600.0
SESSION_ENDED = "Session ended"
SESSION_EXPIRED = "Session expired, log in again"
"""The refresh of a session past SESSION_MAX_DAYS: said apart, so the client asks for the password."""
#: Control characters (NUL included) never reach a device label; runs of whitespace become one space.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_SPACES = re.compile(r"\s+")


def device_label(given: str | None, user_agent: str | None) -> str:
    """The device a session is shown as: what the client said, else its User-Agent, printable and short."""
    raw = given if given and given.strip() else user_agent or ""
    label = _SPACES.sub(" ", _UNPRINTABLE.sub(" ", raw)).strip()
    return label[:DEVICE_MAX] or "unknown"


class SessionCache:
    """What this worker knows of sessions: `user_id` (alive) or `ENDED`, each for `ttl` seconds, at most `size`.

    A plain dict, not an LRU library: the hit costs one lookup and one clock read, and entries
    leave by age anyway (the oldest insertion is evicted when full). An end always wins over a
    database read that started before it and returns after it (`remember` keeps the mark).
    """

    __slots__ = ("_clock", "_entries", "size", "ttl")

    def __init__(self, *, ttl: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._entries: dict[str, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, session_id: str) -> int | None:
        """The session's user, `ENDED`, or None when this worker does not know (or no longer trusts) it."""
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._entries[session_id]
            return None
        return entry[0]

    def remember(self, session_id: str, user_id: int) -> int:
        """Record what the database said; returns what the cache now holds (`ENDED` if an end came first)."""
        if user_id != ENDED and self.get(session_id) == ENDED:
            return ENDED
        self._put(session_id, user_id)
        return user_id

    def end(self, session_id: str) -> None:
        self._put(session_id, ENDED)

    def forget_alive(self) -> None:
        """After a broker outage: ends announced meanwhile may have been missed; the ends we know still hold."""
        self._entries = {sid: entry for sid, entry in self._entries.items() if entry[0] == ENDED}

    def _put(self, session_id: str, user_id: int) -> None:
        self._entries.pop(session_id, None)  # re-inserted at the end: eviction goes by insertion age
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[session_id] = (user_id, self._clock() + self.ttl)


@dataclass(frozen=True, slots=True)
class Issued:
    user_id: int
    session_id: str
    tokens: TokenPair


class Sessions:
    def __init__(
        self,
        *,
        db: Sessionmaker,
        reads: Sessionmaker,
        hub: Hub,
        tokens: TokenCodec,
        cache: SessionCache,
        leeway: float,
        audit: AuditLog,
    ) -> None:
        self._db = db
        self._reads = reads
        self._hub = hub
        self.tokens = tokens
        self.cache = cache
        self.leeway = timedelta(seconds=leeway)
        self.audit = audit
        self._last_used: dict[str, float] = {}
        """Sessions used since the last activity write, with when (Unix time)."""
        hub.on_broadcast(self._on_broadcast)
        hub.on_reconnect(cache.forget_alive)

    # --- the check ----------------------------------------------------------------------------

    async def authenticate(self, token: str) -> TokenClaims:
        """The claims of a valid access token whose session is alive; `AuthError` otherwise."""
        claims = self.tokens.decode_access(token)
        if not await self.is_alive(claims.session_id, claims.user_id):
            raise AuthError(SESSION_ENDED)
        self._last_used[claims.session_id] = time.time()
        return claims

    async def is_alive(self, session_id: str, user_id: int) -> bool:
        owner = self.cache.get(session_id)
        if owner is None:
            metrics.SESSION_CACHE_MISS.inc()
            async with self._reads() as session:
                found = await queries.user_of(session, session_id)
            owner = self.cache.remember(session_id, ENDED if found is None else found)
        else:
            metrics.SESSION_CACHE_HIT.inc()
        return owner == user_id

    # --- starting and refreshing --------------------------------------------------------------

    async def start(self, session: AsyncSession, user_id: int, *, device: str) -> Issued:
        """A new session for `user_id`, inside the caller's transaction (signup creates the user in it).

        Its absolute lifetime (SESSION_MAX_DAYS) runs from now."""
        session_id = secrets.token_urlsafe(24)
        now = utcnow()
        pair = self.tokens.issue_pair(user_id, session_id, now=now)
        await queries.create(
            session, session_id=session_id, user_id=user_id, device=device, token_hash=pair.refresh_hash, now=now
        )
        return Issued(user_id, session_id, pair)

    async def refresh(self, refresh_token: str, *, client: str | None = None) -> Issued:
        """Exchange a refresh token for new tokens; the presented one is rotated and can never be used again.

        A rotated token presented again within the leeway (two tabs refreshing at once) is refused
        and nothing else happens. Later it means a copy is in someone else's hands: the whole
        session ends, for the thief and the rightful user alike, who logs in again. A session
        older than SESSION_MAX_DAYS ends too (`Session expired, log in again`); the new tokens
        never outlive it. `client` is the address, for the security log.
        """
        claims = self.tokens.decode_refresh(refresh_token)
        now = utcnow()
        async with self._db() as session, session.begin():
            started = await queries.started_at(session, claims.session_id)
            if started is None:
                raise AuthError(SESSION_ENDED)
            pair: TokenPair | None = None
            if now < self.tokens.session_ends_at(started):
                pair = self.tokens.issue_pair(claims.user_id, claims.session_id, now=now, started=started)
                rotation = await queries.rotate(
                    session,
                    session_id=claims.session_id,
                    old_hash=claims.token_hash,
                    new_hash=pair.refresh_hash,
                    now=now,
                )
        if pair is None:  # past its absolute lifetime: ended, not refreshed
            self.audit.record("session.expired", client=client, user_id=claims.user_id, session_id=claims.session_id)
            await self.end(claims.user_id, [claims.session_id])
            raise AuthError(SESSION_EXPIRED)
        if rotation.outcome == "rotated" and rotation.user_id == claims.user_id:
            return Issued(claims.user_id, claims.session_id, pair)
        if rotation.outcome == "reused" and rotation.rotated_at is not None:
            if now - rotation.rotated_at <= self.leeway:
                raise AuthError("Refresh token already used")
            self.audit.record(
                "refresh.reused",
                client=client,
                user_id=claims.user_id,
                session_id=claims.session_id,
                rotated_at=rotation.rotated_at.isoformat(timespec="seconds"),
            )
            await self.end(claims.user_id, [claims.session_id])
        raise AuthError(SESSION_ENDED)

    # --- ending -------------------------------------------------------------------------------

    async def end(self, user_id: int, session_ids: Iterable[str]) -> list[str]:
        """End those of `session_ids` that are `user_id`'s; returns the ones that were."""
        async with self._db() as session, session.begin():
            ended = await queries.delete_sessions(session, user_id, session_ids)
        await self.announce(user_id, ended)
        return ended

    async def end_all(self, user_id: int, *, keep: str | None = None) -> list[str]:
        async with self._db() as session, session.begin():
            ended = await queries.delete_all(session, user_id, keep=keep)
        await self.announce(user_id, ended)
        return ended

    async def announce(self, user_id: int, session_ids: list[str]) -> None:
        """Make ended (committed) sessions take effect on every worker: this one at once, the others by broadcast."""
        if not session_ids:
            return
        # This worker at once (the hub hands it to our own handler), the others through the broker.
        self._hub.broadcast({"type": "sessions.ended", "user_id": user_id, "session_ids": session_ids})

    def _on_broadcast(self, message: dict[str, Any]) -> None:
        if message.get("type") != "sessions.ended":
            return
        user_id, session_ids = message.get("user_id"), message.get("session_ids")
        if not isinstance(user_id, int) or not isinstance(session_ids, list):
            logger.warning("Ignoring a malformed sessions.ended message")
            return
        ended = [sid for sid in session_ids if isinstance(sid, str)]
        for sid in ended:
            self.cache.end(sid)
            self._last_used.pop(sid, None)
        self._hub.notify_subscribers(user_id, {"type": "session.ended", "session_ids": ended})

    # --- upkeep -------------------------------------------------------------------------------

    async def flush_activity(self) -> None:
        """Write `last_used_at` of the sessions used since the last write, in one statement."""
        if not self._last_used:
            return
        pending, self._last_used = self._last_used, {}
        last_used = {sid: datetime.fromtimestamp(when, UTC) for sid, when in pending.items()}
        async with self._db() as session, session.begin():
            await queries.touch_many(session, last_used)

    async def prune(self) -> int:
        """Delete sessions whose refresh tokens have all expired or that outlived SESSION_MAX_DAYS, and
        expired rotated tokens."""
        now = utcnow()
        oldest = now - self.tokens.refresh_lifetime
        async with self._db() as session, session.begin():
            return await queries.prune(
                session, idle_before=oldest, rotated_before=oldest, started_before=now - self.tokens.session_lifetime
            )

    async def maintain_forever(self, *, every: float = ACTIVITY_EVERY, prune_every: float = PRUNE_EVERY) -> None:
        """Every worker: activity writes each `every` seconds, pruning each `prune_every`."""
        next_prune = 0.0
        while True:
            try:
                await self.flush_activity()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + prune_every
                    if pruned := await self.prune():
                        logger.info("Pruned %d expired session(s)", pruned)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop boundary: a database blip costs one minute of last-used times
                logger.warning("Session upkeep failed; will retry", exc_info=True)
            await asyncio.sleep(every)
