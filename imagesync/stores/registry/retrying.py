"""The retry layer: a request tried again while its failure may pass, and what it says when
none came through.

Above the auth layer, so that a token service's passing failure (a 5xx, a reset) is retried
like the registry's. A body that cannot be sent twice is tried once (the caller restarts the
whole transfer). Waits follow the policy and ``Retry-After``, and end at once when the run is
being stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import requests

from imagesync.errors import RegistryError, TransientError
from imagesync.redact import redact_url
from imagesync.retry import RetryPolicy, is_retriable_status
from imagesync.stores.registry.answers import Answer
from imagesync.stores.registry.host import MAX_REDIRECTS
from imagesync.stores.registry.netfailure import PERMANENT, NetworkFailure, classify, kind_of
from imagesync.stores.registry.wire import Call

log = logging.getLogger("imagesync.http")


class Stopped(RegistryError):
    """The run is being stopped: a retry that was waiting gives up."""


class Unreachable(RegistryError):
    """No answer came: the connection failed, was reset or timed out (after any retries)."""


class TransientTokenError(TransientError):
    """The token service failed in a way that may pass (5xx, 429, a reset): retried."""


class Retrier:
    """Runs one call's attempts. Thread-safe: it holds only the policy and the stop signal."""

    def __init__(self, policy: RetryPolicy, stopping: threading.Event, timeout: float) -> None:
        self.policy = policy
        self.stopping = stopping
        self.timeout = timeout

    def run(self, call: Call, attempt_once: Callable[[Call], Answer], *, retry: bool) -> Answer:
        """The answer of ``attempt_once(call)``, tried again (``retry``) while it fails in a
        way that may pass; a final answer of any status is returned."""
        attempts = self.policy.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                answer = attempt_once(call)
            except requests.exceptions.TooManyRedirects:
                raise RegistryError(
                    f"{call.method} {redact_url(call.path)} on {call.registry} was redirected "
                    f"more than {MAX_REDIRECTS} times (a redirect loop)",
                    "check the registry's configuration (its public URL, proxies in front)",
                ) from None
            except requests.exceptions.RequestException as error:
                failure = classify(error, call.registry, self.timeout)
                if attempt < attempts and is_retriable_exception(error):
                    self._wait(call, attempt, None, failure.kind.value)
                    continue
                raise unreachable(failure, attempt) from None
            except TransientTokenError as error:
                if attempt < attempts:
                    self._wait(call, attempt, error.retry_after, error.message)
                    continue
                raise
            if attempt < attempts and is_retriable_status(answer.status_code):
                retry_after = answer.headers.get("Retry-After")
                answer.discard()
                self._wait(call, attempt, retry_after, str(answer.status_code))
                continue
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(self, call: Call, attempt: int, retry_after: str | None, why: str) -> None:
        delay = self.policy.delay(attempt, retry_after)
        what = f"{call.method} {redact_url(call.path)} on {call.registry}"
        log.debug(
            "retry %d/%d of %s after %s: waiting %.1f s",
            attempt,
            self.policy.attempts - 1,
            what,
            why,
            delay,
        )
        if self.stopping.wait(delay):
            raise Stopped(f"stopped while waiting to retry {what}")


def is_retriable_exception(error: BaseException) -> bool:
    """Whether a failure of requests may pass: a connection that failed or broke, a timeout."""
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


def unreachable(failure: NetworkFailure, attempts: int) -> RegistryError:
    """The error for a request that got no answer. TLS problems are settings, not a network
    that broke: they are plain RegistryErrors, which nothing retries as a whole."""
    kind = RegistryError if failure.is_tls else Unreachable
    return kind(failure.after(attempts), failure.hint)
