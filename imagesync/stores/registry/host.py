"""One registry host: an oras-py ``Registry``, set up for a sync tool.

oras-py's :class:`~oras.provider.Registry` is the base. From it: the ``requests`` session with
its cookie policy (every cookie refused: Harbor takes a cookie as the sign of a browser and
starts CSRF checks that break API clients), the scheme (``prefix``) and the TLS verification
setting (``_tls_verify``: on, off, or a CA file). Added here, for a tool that keeps many
requests in flight: a connection pool sized to the concurrency run against the host (requests
keeps 10 connections per host), the per-answer deadlines of :class:`DeadlineAdapter`, a cap on
redirects, the environment read once rather than per request, and the bounds on requests and
blob streams in flight. What a ``Registry`` does beyond that (its requests, retries, tokens,
uploads) is replaced by the transport and the client; the README lists what and why.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from oras.provider import Registry

from imagesync.stores.registry.deadline import DeadlineAdapter
from imagesync.stores.registry.registries import RegistrySettings, is_loopback

# Blob storage redirects once or twice; more than this is a loop.
MAX_REDIRECTS = 10
# Of a registry's max_concurrency, the slots that blob streams leave to small requests.
SMALL_SLOTS = 2


def stream_slots(max_concurrency: int) -> int:
    """How many blob streams run at once against a registry with ``max_concurrency``: all
    slots but SMALL_SLOTS (6 of the default 8; benchmarks/README.md, "Keeping the link full",
    has the measurements behind it)."""
    return max(1, max_concurrency - SMALL_SLOTS)


def tls_verify(settings: RegistrySettings) -> bool | str:
    """What TLS trusts for a registry: its CA file, nothing (plain HTTP), or the system's."""
    if settings.ca_file is not None:
        return str(settings.ca_file)
    return not settings.insecure


class RegistryHost(Registry):  # type: ignore[misc]  # oras-py ships no type information
    """A registry host's session, scheme and TLS setting (oras-py's), and its limits.

    ``prefix`` is ``http`` for a registry listed ``insecure``; a loopback registry without a
    CA file may speak either, so ``probed`` stays False until the transport has asked.
    """

    def __init__(self, hostname: str, settings: RegistrySettings) -> None:
        super().__init__(
            hostname=hostname, insecure=settings.insecure, tls_verify=tls_verify(settings)
        )
        self.probed = settings.insecure or settings.ca_file is not None or not is_loopback(hostname)
        session = self.session
        session.max_redirects = MAX_REDIRECTS
        session.merge_environment_settings = _EnvironmentSettings(
            session.merge_environment_settings
        )
        adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=2 * settings.max_concurrency)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Requests in flight to this host; of them, blob streams (a copy holds one from its
        # download until the last byte of its upload is sent), fewer, so that small requests
        # (HEADs, upload POSTs, manifests, tags) always find a slot free rather than wait
        # behind a stream that holds one for seconds.
        self.requests = threading.BoundedSemaphore(settings.max_concurrency)
        self.streams = threading.BoundedSemaphore(stream_slots(settings.max_concurrency))

    @property
    def verify(self) -> bool | str:
        verify: bool | str = self._tls_verify
        return verify


class _EnvironmentSettings:
    """requests' ``Session.merge_environment_settings``, asked once per scheme, host and options.

    requests reads the proxy variables, NO_PROXY, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE from
    the environment again for every request: with a few dozen variables that is about a
    fifth of a request's CPU time. The answer depends only on the URL's scheme and host and
    on the other arguments, and the environment does not change while imagesync runs.
    """

    def __init__(self, merge: Any) -> None:
        self._merge = merge
        self._lock = threading.Lock()
        self._known: dict[tuple[Any, ...], dict[str, Any]] = {}

    def __call__(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies:  # requests passes {} unless a caller gives proxies; imagesync never does
            return dict(self._merge(url, proxies, stream, verify, cert))
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        with self._lock:
            known = self._known.get(key)
        if known is None:
            known = dict(self._merge(url, {}, stream, verify, cert))
            with self._lock:
                self._known[key] = known
        # Copies: requests may change what it is given.
        return {**known, "proxies": known["proxies"].copy()}
