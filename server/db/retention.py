"""Keeps the event log bounded: events older than the retention window are deleted periodically.

A client that resumes from before the window gets `resync_required` and reloads from REST,
so pruning never produces a silent gap. Every worker runs the loop; the DELETE is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from server.db import events
from server.db.engine import Sessionmaker
from server.db.models import utcnow

logger = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0


async def prune_once(db: Sessionmaker, *, retention: timedelta) -> int:
    async with db() as session, session.begin():
        return await events.prune(session, before=utcnow() - retention)


async def prune_forever(db: Sessionmaker, *, retention: timedelta, every: float = PRUNE_EVERY) -> None:
    while True:
        try:
            deleted = await prune_once(db, retention=retention)
            if deleted:
                logger.info("Pruned %d event(s) older than %s", deleted, retention)
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop boundary: a database blip must not end pruning for good
            logger.warning("Event pruning failed; will retry", exc_info=True)
        await asyncio.sleep(every)
