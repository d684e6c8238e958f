"""Every abuse limit of the service, built from the settings, and the checks the edges call.

Keys never hold an email in clear: accounts are keyed by a hash of the normalised address.
IPv6 clients are keyed by their /64, the block one subscriber gets, so rotating through the
addresses of one block buys no fresh budget. Per-user counters carry the user's hash tag
(`server.keys`): on a Redis Cluster they live in the slot of the user's channel.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Awaitable, Callable

from limits import RateLimitItemPerSecond

from server.abuse.limiter import Limiter, Policy
from server.keys import user_tag
from server.settings import Settings

IPV6_PREFIX = 64


class Limits:
    """The named policies, over one `Limiter` (shared by every worker when it counts in Redis)."""

    def __init__(self, limiter: Limiter, settings: Settings) -> None:
        self.limiter = limiter
        # Login and signup count per worker during a storage outage (see limiter.py).
        self.login_account = Policy.parse(
            "login_account",
            settings.rate_limit_login_account,
            detail="Too many failed logins for this account",
            on_outage="local",
        )
        self.login_ip = Policy.parse(
            "login_ip",
            settings.rate_limit_login_ip,
            detail="Too many failed logins from this address",
            on_outage="local",
        )
        self.login_attempts_ip = Policy.parse(
            "login_attempts_ip",
            settings.rate_limit_login_attempts_ip,
            detail="Too many logins from this address",
            on_outage="local",
        )
        self.login_known_client = Policy(
            name="login_known_client",
            # One entry per window: "full" means this account logged in from this address within it.
            rate=RateLimitItemPerSecond(1, round(settings.login_known_client_days * 86400)),
            detail="",
            on_outage="local",
        )
        self.signup_ip = Policy.parse(
            "signup_ip", settings.rate_limit_signup_ip, detail="Too many signups from this address", on_outage="local"
        )
        self.chat_turns = Policy.parse("chat_turns", settings.rate_limit_chat_turns, detail="Too many messages")
        self.tool_calls = Policy.parse("tool_calls", settings.rate_limit_tool_calls, detail="Too many task changes")
        self.destructive_calls = Policy.parse(
            "destructive_calls", settings.rate_limit_destructive_calls, detail="Too many deletions"
        )

    async def login_attempt(self, email: str, client: str | None) -> None:
        """Before the password is checked: refuse a client or account over its budget (`RateLimitedError`).

        The per-account budget counts failures only, and an account + address that logged in
        successfully within LOGIN_KNOWN_CLIENT_DAYS is exempt from it: someone guessing a user's
        password from elsewhere cannot keep that user out. The per-address budgets still apply.
        """
        ip = client_key(client)
        await self.limiter.check(self.login_attempts_ip, ip)
        await self.limiter.check(self.login_ip, ip, count=False)
        account = account_key(email)
        if not await self._known(account, ip):
            await self.limiter.check(self.login_account, account, count=False)

    async def login_failed(self, email: str, client: str | None) -> None:
        ip = client_key(client)
        await self.limiter.hit(self.login_ip, ip)
        await self.limiter.hit(self.login_account, account_key(email))

    async def login_succeeded(self, email: str, client: str | None) -> None:
        # Refused (so not renewed) if already known: the exemption runs from the first login in its window.
        await self.limiter.hit(self.login_known_client, account_key(email), client_key(client))

    async def refresh_attempt(self, client: str | None) -> None:
        """Before a refresh token is checked: refuse an address with too many failures."""
        await self.limiter.check(self.login_ip, client_key(client), count=False)

    async def refresh_failed(self, client: str | None) -> None:
        """A refresh token that was refused counts as a failed login of the address."""
        await self.limiter.hit(self.login_ip, client_key(client))

    async def signup(self, client: str | None) -> None:
        await self.limiter.check(self.signup_ip, client_key(client))

    async def chat_turn(self, user_id: int, *, is_retry: Callable[[], Awaitable[bool]]) -> None:
        """Count a turn; over budget, `RateLimitedError` unless `is_retry()` says it was accepted before.

        A retry is let through without counting, and the turn's own idempotency answers it with
        its earlier ack. `is_retry` (a database read) runs only for turns over the budget.
        """
        if await self.limiter.hit(self.chat_turns, user_tag(user_id)) or await is_retry():
            return
        raise await self.limiter.refusal(self.chat_turns, user_tag(user_id))

    async def tool_call(self, user_id: int, *, destructive: bool = False) -> None:
        """One task change (REST, assistant or MCP); deletions also count against their own, lower budget."""
        if destructive:
            await self.limiter.check(self.destructive_calls, user_tag(user_id))
        await self.limiter.check(self.tool_calls, user_tag(user_id))

    async def aclose(self) -> None:
        await self.limiter.aclose()

    async def _known(self, account: str, ip: str) -> bool:
        return not await self.limiter.test(self.login_known_client, account, ip)


def account_key(email: str) -> str:
    normalised = email.strip().lower()  # as users are stored (server/db/users.py)
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def client_key(host: str | None) -> str:
    """The address as the limits count it: IPv4 as is, IPv6 by its /64; anything else (tests, unix sockets) verbatim."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)
