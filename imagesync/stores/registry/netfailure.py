"""Why a registry could not be reached, in the words a person would use.

requests and urllib3 report a failed connection as nested exceptions whose text is a library's
repr (``HTTPSConnectionPool(host=…): Max retries exceeded … (Caused by NameResolutionError(…))``),
even when nothing was retried. The transport hands every such exception to :func:`classify`,
which walks the chain down to what really happened (the resolver said no, the port refused,
the certificate is not trusted, nothing answered in time) and says it as one sentence, with
the fix. Nothing else in imagesync reads these exceptions' text.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import requests
import urllib3

from imagesync.redact import excerpt
from imagesync.stores.registry.deadline import deadline_message


class Kind(StrEnum):
    NO_SUCH_HOST = "no such host"
    DNS_UNAVAILABLE = "DNS did not answer"
    REFUSED = "connection refused"
    NO_ROUTE = "no route"
    TIMEOUT = "no answer in time"
    CLOSED = "connection closed"
    TRUNCATED = "body cut short"
    TLS_UNTRUSTED = "certificate not trusted"
    NOT_TLS = "not TLS"
    TLS_FAILED = "TLS failed"
    PROXY = "proxy failed"
    OTHER = "other"


# The resolver's "no": asking again in a few seconds gets the same answer.
PERMANENT = frozenset({Kind.NO_SUCH_HOST, Kind.TLS_UNTRUSTED, Kind.NOT_TLS, Kind.TLS_FAILED})
TLS_KINDS = frozenset({Kind.TLS_UNTRUSTED, Kind.NOT_TLS, Kind.TLS_FAILED})
# OpenSSL's words for "the other side does not speak TLS": a plain-HTTP server.
_PLAIN_HTTP_SIGNS = ("wrong version number", "record layer failure", "unknown protocol")
_NO_ROUTE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})
_PROXY_TYPES = (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError)
_CLOSED_TYPES = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    urllib3.exceptions.ProtocolError,
)


@dataclass(frozen=True)
class NetworkFailure:
    """What went wrong reaching ``host``: ``message`` is the sentence, ``hint`` the fix."""

    kind: Kind
    host: str
    message: str
    hint: str

    @property
    def is_tls(self) -> bool:
        return self.kind in TLS_KINDS

    def after(self, attempts: int) -> str:
        """The message, saying how often it was tried when that was more than once."""
        return self.message if attempts <= 1 else f"{self.message} ({attempts} attempts)"


def kind_of(error: BaseException) -> Kind:
    """What happened underneath a requests / urllib3 / socket exception."""
    chain = list(_causes(error))
    if any(isinstance(e, _PROXY_TYPES) for e in chain):
        return Kind.PROXY
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return Kind.TLS_UNTRUSTED
    for e in chain:
        if isinstance(e, socket.gaierror | urllib3.exceptions.NameResolutionError):
            return _dns_kind(chain)
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return Kind.REFUSED
        if isinstance(e, OSError) and e.errno in _NO_ROUTE_ERRNOS:
            return Kind.NO_ROUTE
    if any(_is_timeout(e) for e in chain):
        return Kind.TIMEOUT
    for e in chain:
        if isinstance(e, ssl.SSLError):
            text = str(e).lower()
            return Kind.NOT_TLS if any(s in text for s in _PLAIN_HTTP_SIGNS) else Kind.TLS_FAILED
    for e in chain:
        if isinstance(e, http.client.IncompleteRead | urllib3.exceptions.IncompleteRead):
            return Kind.TRUNCATED
        if isinstance(e, _CLOSED_TYPES):
            return Kind.CLOSED
    return Kind.OTHER


# Per kind: the sentence (given the host, the name the resolver was asked, the timeout and the
# error) and the fix (given the host). OTHER is the fallback.
_Words = Callable[[str, str, float, BaseException], str]
_SAYINGS: dict[Kind, tuple[_Words, Callable[[str], str]]] = {
    Kind.NO_SUCH_HOST: (
        lambda host, name, timeout, error: f"cannot resolve host {name}",
        lambda host: (
            "check the host name; where only mirrors reach the internet, list a mirror "
            "for this registry under 'mirrors' in the --registries-config file"
        ),
    ),
    Kind.DNS_UNAVAILABLE: (
        lambda host, name, timeout, error: (
            f"cannot resolve host {name}: the DNS server did not answer"
        ),
        lambda host: "check the machine's DNS settings and network, then try again",
    ),
    Kind.REFUSED: (
        lambda host, name, timeout, error: f"connection refused by {host}",
        lambda host: "check the host and port, and that the registry is running there",
    ),
    Kind.NO_ROUTE: (
        lambda host, name, timeout, error: f"no network route to {host}",
        lambda host: "check the network connection, the proxy settings (HTTPS_PROXY) and firewalls",
    ),
    Kind.TIMEOUT: (
        # The deadline's own words say which time ran out (a blob's throughput floor).
        lambda host, name, timeout, error: (
            deadline_message(error) or f"no answer from {host} within {timeout:g} s"
        ),
        lambda host: (
            "check that it is a registry and that no proxy or firewall holds the "
            "connection; give a slow registry longer with --timeout"
        ),
    ),
    Kind.TLS_UNTRUSTED: (
        lambda host, name, timeout, error: (
            f"TLS certificate of {host} is not trusted ({_verify_reason(error)})"
        ),
        lambda host: f"give the registry's CA with 'ca_file' for {host} in the registries config",
    ),
    Kind.NOT_TLS: (
        lambda host, name, timeout, error: (
            f"{host} does not answer in TLS (it may serve plain HTTP)"
        ),
        lambda host: (
            f"list {host} as 'insecure: true' in the registries config if it serves plain HTTP"
        ),
    ),
    Kind.TLS_FAILED: (
        lambda host, name, timeout, error: (
            f"the TLS handshake with {host} failed ({_ssl_reason(error)})"
        ),
        lambda host: (
            f"check the registry's TLS set-up, or give its CA with 'ca_file' for {host} "
            "in the registries config"
        ),
    ),
    Kind.PROXY: (
        lambda host, name, timeout, error: (
            f"the proxy did not connect to {host} ({_innermost(error)})"
        ),
        lambda host: "check HTTPS_PROXY / HTTP_PROXY, and NO_PROXY for registries reached directly",
    ),
    Kind.CLOSED: (
        lambda host, name, timeout, error: f"{host} closed the connection without an answer",
        lambda host: "check proxies and firewalls on the way, and that the port serves a registry",
    ),
    Kind.TRUNCATED: (
        lambda host, name, timeout, error: f"the answer from {host} ended early",
        lambda host: "try again; check proxies on the way",
    ),
    Kind.OTHER: (
        lambda host, name, timeout, error: f"cannot reach {host} ({_innermost(error)})",
        lambda host: "check the registry host and your network",
    ),
}


def classify(error: BaseException, host: str, timeout: float) -> NetworkFailure:
    """The sentence and the fix for ``error``, raised while talking to ``host`` (host[:port])
    with ``timeout`` seconds to answer."""
    kind = kind_of(error)
    message, hint = _SAYINGS[kind]
    return NetworkFailure(kind, host, message(host, _hostname(host), timeout, error), hint(host))


def broken_body(error: BaseException) -> str:
    """Why a body stopped midway, in a few words (the host is in the caller's sentence)."""
    kind = kind_of(error)
    if kind is Kind.TRUNCATED:
        return "the body ended early (truncated)"
    if kind is Kind.TIMEOUT:
        return deadline_message(error) or "the read timed out"
    if kind is Kind.CLOSED:
        return "the connection was reset"
    return f"the connection broke ({_innermost(error)})"


def realm_host(realm: str) -> str:
    """host[:port] of a token service URL, for a message."""
    try:
        return urlsplit(realm).netloc.rsplit("@", 1)[-1] or excerpt(realm, 100)
    except ValueError:
        return excerpt(realm, 100)


def _dns_kind(chain: list[BaseException]) -> Kind:
    for e in chain:
        if isinstance(e, socket.gaierror) and e.errno == socket.EAI_AGAIN:
            return Kind.DNS_UNAVAILABLE
    return Kind.NO_SUCH_HOST


def _is_timeout(error: BaseException) -> bool:
    # urllib3 2 makes every failed connect (NewConnectionError) a ConnectTimeoutError too.
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(
        error,
        requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError,
    )


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and everything it wraps: requests keeps urllib3's error in ``args``, urllib3
    keeps the cause in ``reason`` and in ``__cause__`` (or ``__context__``)."""
    pending = [error]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        wrapped = [a for a in current.args if isinstance(a, BaseException)]
        context = None if current.__suppress_context__ else current.__context__
        for nested in (reason, *wrapped, current.__cause__, context):
            if isinstance(nested, BaseException):
                pending.append(nested)


def _innermost(error: BaseException) -> str:
    """The deepest cause in a few words: an OS error's own text, else the exception's name."""
    *_, deepest = _causes(error)
    if isinstance(deepest, OSError) and deepest.strerror:
        return deepest.strerror
    return type(deepest).__name__


def _verify_reason(error: BaseException) -> str:
    for e in _causes(error):
        if isinstance(e, ssl.SSLCertVerificationError):
            return excerpt(str(e.verify_message or e.reason or "certificate verify failed"), 300)
    return "certificate verify failed"


def _ssl_reason(error: BaseException) -> str:
    for e in _causes(error):
        if isinstance(e, ssl.SSLError) and e.reason:
            return str(e.reason).replace("_", " ").lower()
    return _innermost(error)


def _hostname(host: str) -> str:
    """The name of ``host[:port]`` (what the resolver is asked), brackets kept off IPv6."""
    try:
        return urlsplit(f"//{host}").hostname or host
    except ValueError:
        return host
