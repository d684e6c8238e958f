"""The offline, deterministic natural-language task agent ("rules" provider)."""

from __future__ import annotations

from server.assistant.providers.rules.provider import RulesProvider

__all__ = ["RulesProvider"]
