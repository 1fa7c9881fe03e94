"""Pull quotas: a registry that counts manifest ``GET``\\ s (Docker Hub) and refuses past its
quota, told apart from one that is only busy.

Docker Hub sends ``ratelimit-limit: 100;w=21600`` and ``ratelimit-remaining: 76;w=21600`` on
its manifest answers, and past the quota ``429 TOOMANYREQUESTS`` (docker/docs
``content/manuals/docker-hub/usage/pulls.md``). Retrying that ``429`` burns quota
(tsouza/cerberus#1561), so it is not retried. From the answer alone, a ``429`` is a quota
``429`` when it says ``ratelimit-remaining: 0`` or its error code is ``TOOMANYREQUESTS`` and
it names no ``Retry-After`` (a wait to come back after): a ``429`` with ``Retry-After`` and
allowance left is a passing overload, and retried like a 503.

The run then stops asking that registry (:class:`Quotas`): every request after it fails at
once with :class:`QuotaExhausted`, whose message says when the quota resets when the registry
said (``ratelimit-reset``, ``Retry-After``, or the ``w=`` window). When an answer said that
no allowance is left (``ratelimit-remaining: 0`` on a ``200``), manifest ``GET``\\ s are not
sent at all: their ``429`` is known in advance. While the allowance is low, manifest ``GET``\\ s
to that registry go one at a time, so that no more than one can meet the quota.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime

from imagesync.errors import QuotaExhausted
from imagesync.stores.registry.answers import Answer, registry_message

# At or below this many pulls left, manifest GETs to the registry go one at a time.
LOW = 20


def allowance(answer: Answer, header: str = "ratelimit-remaining") -> int | None:
    """A number from ``ratelimit-remaining: 76;w=21600`` (or another such header)."""
    value = answer.headers.get(header)
    if not value:
        return None
    try:
        return int(value.split(";", 1)[0].strip())
    except ValueError:
        return None


def is_quota(answer: Answer) -> bool:
    """Whether a ``429`` is a used-up quota (not retried) rather than a passing overload."""
    if answer.status_code != 429:
        return False
    if allowance(answer) == 0:
        return True
    _, code = registry_message(answer)
    return code == "TOOMANYREQUESTS" and not answer.headers.get("Retry-After")


def reset_time(answer: Answer, now: float | None = None) -> str | None:
    """When the quota resets, as the registry said: ``ratelimit-reset`` (seconds from now, or
    a Unix time), ``Retry-After`` (seconds), else the window of ``ratelimit-remaining``."""
    now = time.time() if now is None else now
    for header in ("ratelimit-reset", "Retry-After"):
        seconds = allowance(answer, header)
        if seconds is not None and seconds >= 0:
            when = seconds if seconds > 1_000_000_000 else now + seconds
            return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")
    window = answer.headers.get("ratelimit-remaining", "")
    if ";w=" in window:
        seconds = allowance_in(window.split(";w=", 1)[1])
        if seconds:
            return f"within {seconds / 3600:g} h (its window)"
    return None


def allowance_in(text: str) -> int | None:
    try:
        return int(text.split(";", 1)[0].strip())
    except ValueError:
        return None


def _manifest_get(method: str, path: str) -> bool:
    return method == "GET" and "/manifests/" in path


class Quotas:
    """Each registry's allowance as its answers said, and the registries whose quota this run
    used up. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.remaining: dict[str, int] = {}
        self._spent: dict[str, str] = {}
        self._one_at_a_time: dict[str, threading.Lock] = {}

    def check(self, registry: str, method: str, path: str) -> None:
        """Raise QuotaExhausted for a request that must not go out."""
        with self._lock:
            spent = self._spent.get(registry)
            empty = self.remaining.get(registry) == 0
        if spent is not None:
            raise QuotaExhausted(spent, _HINT, status=429, code="TOOMANYREQUESTS")
        if empty and _manifest_get(method, path):
            raise QuotaExhausted(
                f"{registry} said no pulls are left (ratelimit-remaining: 0): not asked for "
                "more manifests in this run",
                _HINT,
                status=429,
            )

    def turn(self, registry: str, method: str, path: str) -> AbstractContextManager[object]:
        """The slot a manifest GET waits for while the allowance is low; none otherwise."""
        with self._lock:
            left = self.remaining.get(registry)
            if left is None or left > LOW or not _manifest_get(method, path):
                return nullcontext()
            return self._one_at_a_time.setdefault(registry, threading.Lock())

    def learn(self, registry: str, answer: Answer) -> None:
        """Take in what an answer says; raise QuotaExhausted for a quota ``429``."""
        left = allowance(answer)
        quota = is_quota(answer)
        with self._lock:
            if left is not None:
                self.remaining[registry] = left
            if quota:
                reset = reset_time(answer)
                message = f"{registry}'s pull quota is used up (429 TOOMANYREQUESTS)" + (
                    f"; it resets {'at ' if reset and reset[0].isdigit() else ''}{reset}"
                    if reset
                    else ""
                )
                message += ": not retried, and nothing more is asked of it in this run"
                self._spent.setdefault(registry, message)
                self.remaining[registry] = 0
        if quota:
            answer.close()
            raise QuotaExhausted(self._spent[registry], _HINT, status=429, code="TOOMANYREQUESTS")


_HINT = (
    "log in for a higher quota, pull through a mirror (the registries config's mirrors:), or "
    "plan the rest after the quota resets"
)
