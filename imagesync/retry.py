"""The retry policy: which failures are transient, and how long to wait before trying again.

Which exceptions of the HTTP library are transient is the transport's to say (it alone imports
that library); this module stays free of it, so that the command line can show its defaults
without loading the network stack.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from imagesync.errors import AuthenticationFailed, NotFound, QuotaExhausted, RegistryError

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


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # an HTTP date is rare here; the email package is slow to load

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_transient(error: RegistryError) -> bool:
    """Whether an operation that failed with ``error`` may succeed when started again."""
    if isinstance(error, AuthenticationFailed | NotFound | QuotaExhausted):
        return False
    return error.status is None or is_retriable_status(error.status)
