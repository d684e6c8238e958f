"""Choose the assistant's provider from settings (a registry keyed by name, not an if/elif chain)."""

from __future__ import annotations

from collections.abc import Callable

from server.assistant.agent import Agent
from server.assistant.providers.base import Provider
from server.assistant.providers.echo import EchoProvider
from server.assistant.providers.rules import RulesProvider
from server.assistant.providers.rules.when import warm_up
from server.assistant.tools import tool_specs
from server.settings import Settings


def _echo(settings: Settings) -> Provider:
    return EchoProvider(chunk_delay=settings.echo_chunk_delay)


def _rules(settings: Settings) -> Provider:
    warm_up()  # at start-up, not in a user's first turn that names a weekday
    return RulesProvider()


def _openai(settings: Settings) -> Provider:
    # Imported here: the openai SDK takes most of a second to import, and only this provider needs it.
    from server.assistant.providers.openai import OpenAIProvider

    return OpenAIProvider.from_settings(settings)


PROVIDERS: dict[str, Callable[[Settings], Provider]] = {
    "echo": _echo,
    "rules": _rules,
    "openai": _openai,
}


def provider_name(settings: Settings) -> str:
    if settings.assistant_provider != "auto":
        return settings.assistant_provider
    return "openai" if settings.llm_base_url else "rules"


def create_agent(settings: Settings) -> Agent:
    name = provider_name(settings)
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"Unknown assistant provider {name!r}; expected one of {sorted(PROVIDERS)}") from None
    return Agent(factory(settings), tool_specs(), max_steps=settings.agent_max_steps)
