"""The password policy for new passwords (signup, password change), after NIST SP 800-63B section 3.1.1.2.

- 8 to 128 characters. No composition rules (they make passwords harder to remember, not to
  guess). 128 is far above what anyone types and keeps hashing cheap; nothing is truncated:
  bcrypt_sha256 pre-hashes (server/auth/passwords.py) and longer input is refused, not cut.
- Not one of the most common passwords: `common-passwords.txt.gz` beside this module, 11,611
  entries from the zxcvbn package's frequency list (its header names the source and licence).
- Not the account's own email or its name part (context words, ASVS 6.2.11).

Comparisons ignore case and surrounding spaces: "Password1 " is as guessable as "password1".
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PASSWORD_MIN = 8
PASSWORD_MAX = 128
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")


class WeakPasswordError(ValueError):
    """The password breaks the policy; the message says how, in words fit for the user."""


@cache
def common_passwords() -> frozenset[str]:
    """The blocklist, read once per process (about 1 MB in memory)."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.rstrip("\n") for line in lines if line.strip() and not line.startswith("#"))


def validate_new_password(password: str, *, context: Iterable[str] = ()) -> str:
    """Return `password` if it may be chosen, else raise `WeakPasswordError` saying why.

    `context` holds words tied to the account (its email): a password equal to one of them, or
    to an email's part before the @, is refused.
    """
    if len(password) < PASSWORD_MIN:
        raise WeakPasswordError(f"Use at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise WeakPasswordError(f"Use at most {PASSWORD_MAX} characters")
    folded = password.strip().casefold()
    if folded in common_passwords():
        raise WeakPasswordError("This is one of the most common passwords: choose one that is harder to guess")
    for word in context:
        word = word.strip().casefold()
        if word and folded in {word, word.partition("@")[0]}:
            raise WeakPasswordError("Do not use your email address as your password")
    return password
