"""Abuse limits shared across workers: login, signup, chat turns and tool calls (see README, "Abuse limits")."""

from __future__ import annotations

from server.abuse.limiter import Limiter, Policy
from server.abuse.policies import Limits
from server.abuse.storage import create_storage
from server.settings import Settings

__all__ = ["Limiter", "Limits", "Policy", "create_limits"]


def create_limits(settings: Settings) -> Limits:
    """The limits for `settings`: in Redis when REDIS_URL is set (shared by every worker), else in memory."""
    storage, close = create_storage(settings)
    return Limits(Limiter(storage, timeout=settings.rate_limit_timeout, close=close), settings)
