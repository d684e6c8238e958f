"""Security events: one structured log line per authentication event, with no email, password or token in it.

Each line goes to the `server.security` logger with `security_event` (its name, below), `client`
(the address the abuse limits see: the peer's, or what a trusted proxy says) and whom it concerns:
`user_id` when the account is known, otherwise `account`, a keyed hash of the normalised email
(HMAC-SHA256 under a key derived from `JWT_SECRET`). An operator can correlate attempts on one
account without the log holding the address; without the secret, the hash cannot be checked
against a list of emails (a plain SHA-256 could).

Failures and refusals are warnings; the rest (a login, a password change, a logout) are info.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, Final

logger = logging.getLogger("server.security")

#: What each event means; the log's `security_event` is one of these keys.
EVENTS: Final[dict[str, int]] = {
    "signup": logging.INFO,  # an account and its first session
    "login.succeeded": logging.INFO,
    "login.failed": logging.WARNING,  # unknown email or wrong password (`reason`)
    "login.rate_limited": logging.WARNING,  # 429 before the password was checked
    "refresh.failed": logging.WARNING,  # a refresh token refused (`reason`: the 401's detail)
    "refresh.rate_limited": logging.WARNING,
    "refresh.reused": logging.WARNING,  # a rotated refresh token presented after the leeway: the session ends
    "session.expired": logging.INFO,  # a refresh of a session older than SESSION_MAX_DAYS: it ends
    "password.confirm_failed": logging.WARNING,  # wrong current password for a password change or deletion
    "password.changed": logging.INFO,
    "logout": logging.INFO,
    "logout.all": logging.INFO,
    "session.ended": logging.INFO,  # one session ended from the session list
    "account.deleted": logging.INFO,
}

_KEY_LABEL = b"todo-chat security log: account key"


class AuditLog:
    """Writes security events; `secret` is the JWT secret, from which the account hash's key is derived."""

    def __init__(self, *, secret: str) -> None:
        # A key of its own (HMAC of a fixed label), so the log's hashes reveal nothing about the signing key.
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def account(self, email: str) -> str:
        """The keyed hash of an email as accounts store it (stripped, lower case): the same for every attempt."""
        normalised = email.strip().lower()
        return hmac.new(self._key, normalised.encode(), hashlib.sha256).hexdigest()[:32]

    def record(
        self,
        event: str,
        *,
        client: str | None,
        user_id: int | None = None,
        email: str | None = None,
        **fields: str | int | None,
    ) -> None:
        """Log `event` for `user_id` (or, when no account is known, the hash of `email`) from `client`.

        `fields` are short, non-secret facts (a reason, a session id, a count): never input text.
        """
        level = EVENTS[event]
        extra: dict[str, Any] = {"security_event": event, "client": client}
        if user_id is not None:
            extra["user_id"] = user_id
        elif email is not None:
            extra["account"] = self.account(email)
        extra.update(fields)
        details = " ".join(f"{key}={value}" for key, value in extra.items() if key != "security_event")
        logger.log(level, "Security event %s: %s", event, details, extra=extra)
