"""Password hashing: bcrypt through the passlib API, off the event loop.

bcrypt reads at most 72 bytes of its input. The `bcrypt_sha256` scheme first runs the password
through HMAC-SHA256 (base64, 44 bytes), so every character counts and nothing is truncated
silently: a password and the same password plus one character never both verify.
"""

from __future__ import annotations

import asyncio

from passlib.context import CryptContext


class PasswordHasher:
    def __init__(self, *, rounds: int) -> None:
        self.rounds = rounds
        self._context = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=rounds)

    async def hash(self, password: str) -> str:
        # ~250 ms of CPU at cost 12: a thread keeps other requests and sockets moving.
        return await asyncio.to_thread(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check `password`; with no hash (unknown user) spend the same time and fail."""
        if password_hash is None:
            await asyncio.to_thread(self._context.dummy_verify)
            return False
        return await asyncio.to_thread(self._context.verify, password, password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with another cost or scheme: rehash at the next login."""
        return bool(self._context.needs_update(password_hash))
