"""The abuse package without a server: what the limits count by, the policies from settings, the storage by URL."""

from __future__ import annotations

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage

from server.abuse import create_limits
from server.abuse.limiter import Limiter, Policy
from server.abuse.policies import account_key, client_key
from server.abuse.storage import create_storage
from tests.support.settings import make_settings


def test_accounts_are_keyed_by_a_hash_of_the_normalised_email() -> None:
    key = account_key(" Ada@Example.com ")
    assert key == account_key("ada@example.com")
    assert "ada" not in key and len(key) == 32
    assert key != account_key("bob@example.com")


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # same subscriber block: same budget
        ("::ffff:198.51.100.7", "198.51.100.7"),  # an IPv4 client on a dual-stack socket
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_clients_are_keyed_by_address_and_ipv6_by_its_block(host: str | None, key: str) -> None:
    assert client_key(host) == key


async def test_policies_come_from_the_settings() -> None:
    limits = create_limits(make_settings(rate_limit_chat_turns="7 per 10 minutes", login_known_client_days=2))
    try:
        assert limits.chat_turns.rate.amount == 7 and limits.chat_turns.rate.get_expiry() == 600
        assert limits.chat_turns.on_outage == "open" and limits.login_account.on_outage == "local"
        assert limits.login_known_client.rate.get_expiry() == 2 * 86400
        assert isinstance(limits.limiter, Limiter)
    finally:
        await limits.aclose()


def test_policy_notation_is_the_limits_library_s() -> None:
    policy = Policy.parse("x", "20/hour", detail="Too many")
    assert (policy.rate.amount, policy.rate.get_expiry()) == (20, 3600)


async def test_the_storage_follows_redis_url() -> None:
    memory, close = create_storage(make_settings())
    assert isinstance(memory, MemoryStorage)
    await close()
    for url in ("redis://127.0.0.1:6379/0", "rediss://cache.internal:6380/1", "unix:///run/redis.sock?db=0"):
        redis, close = create_storage(make_settings(redis_url=url, redis_prefix="app"))
        assert isinstance(redis, RedisStorage) and redis.bridge.key_prefix == "app:limits"
        await close()  # nothing was connected yet: creating a storage does no I/O
    with pytest.raises(ValueError, match="REDIS_URL scheme 'memcached'"):
        create_storage(make_settings(redis_url="memcached://127.0.0.1:11211"))
