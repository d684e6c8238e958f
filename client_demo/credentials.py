"""A logged-in client's tokens: the access token kept fresh with the refresh token, the cache kept up to date.

The server rotates refresh tokens: each one works once, and a used one presented again later
ends the whole session (it looks stolen). So the client never presents a refresh token twice:
refreshes within this process are serialised, and before each one the cache file is read again,
in case another `chat-demo` of the same login refreshed first (it saved its new tokens there).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from client_demo.api import ApiClient
from client_demo.config import Login, TokenStore
from client_demo.errors import AuthFailedError

REST_MARGIN = 10.0
"""A REST request goes out with an access token that has at least this long left, or is refreshed first."""


def refresh_delay(expires_at: float, *, now: float, received_at: float) -> float:
    """Seconds until a socket should refresh its token: a minute before expiry, or a fifth of its life if shorter."""
    margin = min(60.0, max(1.0, (expires_at - received_at) / 5))
    return max(0.0, expires_at - margin - now)


class Credentials:
    """`login` and the store it is cached in; `refresh()` replaces the tokens for the same session."""

    def __init__(
        self,
        store: TokenStore,
        login: Login,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.login = login
        self._clock = clock
        self._transport = transport
        self._lock = asyncio.Lock()

    @property
    def token(self) -> str:
        return self.login.token

    def replace(self, login: Login) -> None:
        """A new login (after the password was asked again): cached, and used from now on."""
        self.login = login
        self.store.save(login)

    async def fresh_token(self) -> str:
        expires_at = self.login.expires_at
        if expires_at is not None and expires_at - self._clock() < REST_MARGIN and self.login.refresh_token:
            await self.refresh(stale=self.login.token)
        return self.login.token

    async def refresh(self, *, stale: str) -> bool:
        """Replace the access token `stale`; False when the server refused the refresh (the session is gone).

        Network errors propagate (`ServerUnreachableError`): the session may well be alive.
        """
        async with self._lock:
            if self.login.token != stale:
                return True  # refreshed while this call waited for the lock
            saved = self.store.get(self.login.server)
            if saved is not None and saved.user_id == self.login.user_id and saved.token != stale:
                self.login = saved  # another process refreshed first: its tokens, not a second refresh
                return True
            refresh_token = self.login.refresh_token
            if refresh_token is None:
                return False
            try:
                async with ApiClient(self.login.server, transport=self._transport) as api:
                    result = await api.refresh(refresh_token)
            except AuthFailedError:
                # Refused: the session ended, or this token was just used, by another process that
                # refreshed at the same moment and may have saved its new tokens by now.
                saved = self.store.get(self.login.server)
                if saved is not None and saved.user_id == self.login.user_id and saved.token != stale:
                    self.login = saved
                    return True
                # Never present it again: past the leeway, that would end the session.
                self.login = Login(self.login.server, self.login.email, self.login.user_id, stale)
                if saved is not None and saved.refresh_token == refresh_token:
                    self.store.save(self.login)
                return False
            self.replace(Login.from_auth(self.login.server, result, now=self._clock()))
            return True
