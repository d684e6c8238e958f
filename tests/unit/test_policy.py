"""The password policy: length bounds, no composition rules, common passwords and the account's own email refused."""

from __future__ import annotations

import pytest

from server.auth.policy import PASSWORD_MAX, WeakPasswordError, common_passwords, validate_new_password


@pytest.mark.parametrize(
    "password",
    ["correct horse battery", "zzzzzzzzzz", "ünïcödé-pässwörd", "12345678901234567890123", "a" * PASSWORD_MAX],
)
def test_long_enough_uncommon_passwords_pass_without_composition_rules(password: str) -> None:
    assert validate_new_password(password) == password


@pytest.mark.parametrize("password", ["password", "password123", "Password123", " qwerty123 ", "iloveyou", "12345678"])
def test_common_passwords_are_refused_whatever_their_case(password: str) -> None:
    with pytest.raises(WeakPasswordError, match="most common passwords"):
        validate_new_password(password)


@pytest.mark.parametrize(("password", "reason"), [("1234567", "at least 8"), ("x" * (PASSWORD_MAX + 1), "at most")])
def test_length_bounds(password: str, reason: str) -> None:
    with pytest.raises(WeakPasswordError, match=reason):
        validate_new_password(password)


@pytest.mark.parametrize("password", ["ada.lovelace@example.com", "ADA.LOVELACE", "ada.lovelace"])
def test_the_accounts_own_email_is_refused(password: str) -> None:
    with pytest.raises(WeakPasswordError, match="email"):
        validate_new_password(password, context=["Ada.Lovelace@example.com"])
    assert validate_new_password("ada.lovelace-is-mathematics", context=["ada.lovelace@example.com"])


def test_the_shipped_list_is_large_lower_case_and_without_short_entries() -> None:
    passwords = common_passwords()
    assert len(passwords) > 10_000
    assert all(len(p) >= 8 and p == p.lower() for p in passwords)
    assert not any(p.startswith("#") for p in passwords)
