"""The retry policy: which failures are transient, and how long to wait before trying again."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import requests

from imagesync.errors import AuthenticationFailed, NotFound, RegistryError
from imagesync.netfailure import PERMANENT, kind_of

RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_ATTEMPTS = 5
# Longer waits than this are better reported than slept through.
MAX_DELAY = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` counts the first try; delays grow exponentially with full jitter."""

    attempts: int = DEFAULT_ATTEMPTS
    base_delay: float = 0.5
    max_delay: float = MAX_DELAY

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` starts at 1)."""
        requested = parse_retry_after(retry_after)
        if requested is not None:
            return min(requested, self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def is_retriable_status(status: int) -> bool:
    return status in RETRIABLE_STATUSES


def is_retriable_exception(error: BaseException) -> bool:
    # TLS errors are configuration problems, and a resolver that says a host does not exist
    # says so again a second later: retrying only delays the message.
    if isinstance(error, requests.exceptions.SSLError) or kind_of(error) in PERMANENT:
        return False
    return isinstance(
        error,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | requests.exceptions.ChunkedEncodingError,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_transient(error: RegistryError) -> bool:
    """Whether an operation that failed with ``error`` may succeed when started again."""
    if isinstance(error, AuthenticationFailed | NotFound):
        return False
    return error.status is None or is_retriable_status(error.status)
