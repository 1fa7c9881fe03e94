from __future__ import annotations

import requests

from imagesync.errors import AuthenticationFailed, NotFound, RegistryError
from imagesync.retry import RetryPolicy, is_transient, parse_retry_after
from imagesync.stores.registry.retrying import is_retriable_exception


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_delay_honours_retry_after_and_caps_it() -> None:
    policy = RetryPolicy(max_delay=5)
    assert policy.delay(1, "2") == 2
    assert policy.delay(1, "500") == 5


def test_backoff_grows_and_stays_within_the_cap() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=8)
    for attempt in range(1, 10):
        assert 0 < policy.delay(attempt) <= 8
    assert policy.delay(4) >= 4


def test_what_is_transient() -> None:
    assert is_transient(RegistryError("x", status=503))
    assert is_transient(RegistryError("x", status=None))
    assert not is_transient(RegistryError("x", status=400))
    assert not is_transient(NotFound("x", status=404))
    assert not is_transient(AuthenticationFailed("x", status=401))
    assert is_retriable_exception(requests.exceptions.ConnectionError())
    assert not is_retriable_exception(requests.exceptions.SSLError())
