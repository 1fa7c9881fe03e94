"""HTTP to registries: the one place that owns sessions, TLS, auth, retries and request logs.

Everything above this module speaks in registry hosts, paths and scopes; nothing above it
sets an Authorization header, sleeps for a retry or decides between HTTP and HTTPS.

A request passes three layers, one concern each (like httpx's client, or go-containerregistry's
transports): the retry layer (retrying.py: tries again, waits, words a failure), the auth
layer (bearer.py: credentials and tokens per scope), and the sending layer (wire.py: one
request, its redirects and its answer within its deadline). :class:`Transport` owns what they
share: the hosts (their sessions, pools and limits), the scheme of each, and the counts.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import requests

from imagesync.errors import RegistryError
from imagesync.retry import RetryPolicy
from imagesync.stores.registry.answers import Answer, shown_url
from imagesync.stores.registry.auth import CredentialStore
from imagesync.stores.registry.bearer import Authenticator
from imagesync.stores.registry.deadline import answers_within
from imagesync.stores.registry.host import RegistryHost
from imagesync.stores.registry.netfailure import Kind, classify, kind_of
from imagesync.stores.registry.quota import Quotas
from imagesync.stores.registry.registries import RegistriesConfig
from imagesync.stores.registry.retrying import Retrier, unreachable
from imagesync.stores.registry.wire import Call, log_request, send


def pull_scope(repository_path: str) -> str:
    return f"repository:{repository_path}:pull"


def push_scope(repository_path: str) -> str:
    return f"repository:{repository_path}:pull,push"


class Transport:
    """Sends requests to registries with the right scheme, TLS settings and credentials.

    Thread-safe: the planner and applier call it from worker threads. Concurrency per
    registry is bounded by the registries config's ``max_concurrency``.
    """

    def __init__(
        self,
        config: RegistriesConfig | None = None,
        credentials: CredentialStore | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.config = config or RegistriesConfig()
        # Seconds a registry may take to connect, and then to send its whole answer (headers
        # and body; for a blob, each window of this many seconds brings its share: deadline.py).
        self.timeout = timeout
        self._lock = threading.Lock()
        self._hosts: dict[str, RegistryHost] = {}
        self.request_count = 0
        # Pull allowances and used-up quotas (quota.py); ``rate_limit_remaining`` is its view.
        self.quotas = Quotas()
        self.rate_limit_remaining = self.quotas.remaining
        # Set when the run is being stopped (Ctrl-C, SIGTERM): waits before retries end at once.
        self.stopping = threading.Event()
        self._retrier = Retrier(retry or RetryPolicy(), self.stopping, timeout)
        self._auth = Authenticator(
            self.config, credentials or CredentialStore(), self._host, timeout
        )

    def request(self, call: Call, *, retry: bool = True) -> Answer:
        """Send one request, authenticating and retrying as needed; return any final answer
        (its body read as :class:`Call` says).

        ``retry=False`` is for bodies that cannot be sent twice (streams): the caller
        restarts the whole operation instead.
        """
        return self._retrier.run(call, self._authenticated, retry=retry)

    def url(self, registry: str, path: str) -> str:
        """The URL for ``path`` on ``registry``. An absolute URL (one the registry gave: an
        upload location, a next page) must stay on ``registry``: our credentials for it
        would go along."""
        if path.startswith(("http://", "https://")):
            if not self.on_registry(registry, path):
                raise RegistryError(
                    f"{registry} sent a URL on another host ({shown_url(path)})",
                    "check the registry's configuration (its public URL)",
                )
            return path
        return f"{self._scheme(registry)}://{registry}{path}"

    def on_registry(self, registry: str, url: str) -> bool:
        """Whether absolute ``url`` is on ``registry`` (same host and port; default ports
        count as written out)."""
        return _authority(url) == _authority(f"{self._scheme(registry)}://{registry}/")

    def streams(self, registry: str) -> threading.BoundedSemaphore:
        """Slots for blob streams to ``registry`` (see :class:`RegistryHost`)."""
        streams: threading.BoundedSemaphore = self._host(registry).streams
        return streams

    # -- layers ----------------------------------------------------------------------------

    def _authenticated(self, call: Call) -> Answer:
        return self._auth.send(call, self._send)

    def _send(self, call: Call, authorization: str | None) -> Answer:
        """One request, unless a used-up quota says it must not go out; a quota ``429`` is
        raised (QuotaExhausted), so that the retry layer never sends it again."""
        self.quotas.check(call.registry, call.method, call.path)
        url = self.url(call.registry, call.path)
        with self.quotas.turn(call.registry, call.method, call.path):
            self.quotas.check(call.registry, call.method, call.path)
            started = time.monotonic()
            answer = send(self._host(call.registry), url, call, authorization, self.timeout)
            with self._lock:
                self.request_count += 1
            log_request(call.method, answer.url, answer.status_code, started)
            self.quotas.learn(call.registry, answer)
        return answer

    # -- hosts -----------------------------------------------------------------------------

    def _host(self, registry: str) -> RegistryHost:
        with self._lock:
            host = self._hosts.get(registry)
            if host is None:
                host = self._hosts[registry] = RegistryHost(
                    registry, self.config.settings(registry)
                )
            return host

    def _scheme(self, registry: str) -> str:
        host = self._host(registry)
        if not host.probed:
            # Asked at once by several threads, the probe may run more than once: harmless.
            scheme = self._probe_loopback(registry)
            with self._lock:
                host.prefix, host.probed = scheme, True
        prefix: str = host.prefix
        return prefix

    def _probe_loopback(self, registry: str) -> str:
        """Loopback registries may speak plain HTTP; one that speaks TLS must verify.

        Any other failure (nothing answers, the port refuses) is left to the request that
        follows, which reports it."""
        try:
            with answers_within(registry, self.timeout):
                self._host(registry).session.get(
                    f"https://{registry}/v2/",
                    timeout=self.timeout,
                    stream=True,  # the answer's body does not matter; it is not read
                ).close()
        except requests.exceptions.SSLError as error:
            if kind_of(error) is Kind.NOT_TLS:
                return "http"
            raise unreachable(classify(error, registry, self.timeout), 1) from None
        except requests.exceptions.ConnectionError:
            return "http"
        return "https"


def _authority(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the port filled in from the scheme; None if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port or default
