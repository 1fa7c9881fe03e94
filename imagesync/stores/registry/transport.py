"""HTTP to registries: the one place that owns sessions, TLS, auth, retries and request logs.

Everything above this module speaks in registry hosts, paths and scopes; nothing above it
sets an Authorization header, sleeps for a retry or decides between HTTP and HTTPS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from imagesync import __version__
from imagesync.content.documents import json_object
from imagesync.errors import AuthenticationFailed, NotFound, RegistryError, TransientError
from imagesync.inputfile import limit_text
from imagesync.redact import excerpt, redact_url
from imagesync.retry import RetryPolicy, is_retriable_status
from imagesync.stores.registry.auth import (
    Challenge,
    Credential,
    CredentialStore,
    Token,
    basic_token,
    token_from_response,
)
from imagesync.stores.registry.deadline import BLOB_FLOOR, answers_within
from imagesync.stores.registry.host import MAX_REDIRECTS, RegistryHost, tls_verify
from imagesync.stores.registry.netfailure import (
    PERMANENT,
    Kind,
    NetworkFailure,
    classify,
    kind_of,
    realm_host,
)
from imagesync.stores.registry.registries import RegistriesConfig

log = logging.getLogger("imagesync.http")

USER_AGENT = f"imagesync/{__version__}"
# Bodies read whole are read to a limit (callers pass larger ones for manifests, tag lists,
# referrers): a registry that sends more is broken or hostile, and is not read further.
MAX_ANSWER_BYTES = 1024 * 1024
MAX_ERROR_BODY = 64 * 1024
MAX_TOKEN_BYTES = 1024 * 1024
# key="value" pairs of a WWW-Authenticate challenge (realm, service, scope, error).
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


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
        self.credentials = credentials or CredentialStore()
        self.retry = retry or RetryPolicy()
        # Seconds a registry may take to connect, and then to send its whole answer (headers
        # and body; for a blob, each window of this many seconds brings its share: deadline.py).
        self.timeout = timeout
        self._lock = threading.Lock()
        self._hosts: dict[str, RegistryHost] = {}
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, frozenset[str]], Token] = {}
        self.request_count = 0
        self.rate_limit_remaining: dict[str, int] = {}
        # Set when the run is being stopped (Ctrl-C, SIGTERM): waits before retries end at once.
        self.stopping = threading.Event()

    # -- public ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        registry: str,
        path: str,
        *,
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        stream: bool = False,
        retry: bool = True,
        limit: int = MAX_ANSWER_BYTES,
    ) -> requests.Response:
        """Send one request, authenticating and retrying as needed; return any final response.

        ``path`` starts with ``/v2/`` or is an absolute URL the registry gave us (upload
        locations). ``retry=False`` is for bodies that cannot be sent twice (streams): the
        caller restarts the whole operation instead.

        The answer is read here, whole, up to ``limit`` bytes (an error answer up to
        MAX_ERROR_BODY), within ``timeout`` seconds; a longer one raises AnswerTooLarge. With
        ``stream`` the caller reads the body (a blob), which must keep up the throughput
        floor of deadline.py.
        """
        scope_set = frozenset(scopes)
        attempts = self.retry.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._authenticated(
                    method, registry, path, scope_set, headers, params, data, stream, limit
                )
            except requests.exceptions.TooManyRedirects:
                raise RegistryError(
                    f"{method} {redact_url(path)} on {registry} was redirected more than "
                    f"{MAX_REDIRECTS} times (a redirect loop)",
                    "check the registry's configuration (its public URL, proxies in front)",
                ) from None
            except requests.exceptions.RequestException as error:
                failure = classify(error, registry, self.timeout)
                if attempt < attempts and is_retriable_exception(error):
                    self._wait(attempt, None, method, path, registry, failure.kind.value)
                    continue
                raise _unreachable(failure, attempt) from None
            except _TransientTokenError as error:
                if attempt < attempts:
                    self._wait(attempt, error.retry_after, method, path, registry, error.message)
                    continue
                raise
            if attempt < attempts and is_retriable_status(response.status_code):
                retry_after = response.headers.get("Retry-After")
                _discard(response)
                self._wait(attempt, retry_after, method, path, registry, str(response.status_code))
                continue
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

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

    # -- auth ------------------------------------------------------------------------------

    def _authenticated(
        self,
        method: str,
        registry: str,
        path: str,
        scopes: frozenset[str],
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        data: Any,
        stream: bool,
        limit: int,
    ) -> requests.Response:
        credential = self.credentials.for_registry(registry)
        auth = self._authorization(registry, credential, scopes, refresh=False)
        response = self._send(method, registry, path, headers, auth, params, data, stream, limit)
        if response.status_code != 401:
            return response
        header = response.headers.get("WWW-Authenticate", "")
        response.close()
        challenge = Challenge.parse(header)
        if challenge is None or (auth is not None and credential.bearer):
            raise _refused(registry, credential, scopes, header)
        with self._lock:
            self._challenges[registry] = challenge
        auth = self._authorization(registry, credential, scopes, refresh=auth is not None)
        if auth is None:
            raise _auth_failed(registry, credential)
        if _is_stream(data):
            # The body went out with the refused request and cannot be sent again (resending
            # it would send nothing, and the registry would wait for the bytes it was promised).
            # The new token is cached now; the caller starts the transfer over.
            raise _StreamRefused(
                f"{registry} refused the token sent with a streamed upload (it expired on the way)"
            )
        response = self._send(method, registry, path, headers, auth, params, data, stream, limit)
        if response.status_code == 401:
            header = response.headers.get("WWW-Authenticate", "")
            response.close()
            raise _refused(registry, credential, scopes, header)
        return response

    def _authorization(
        self, registry: str, credential: Credential, scopes: frozenset[str], *, refresh: bool
    ) -> str | None:
        if credential.bearer:
            return f"Bearer {credential.bearer}"
        challenge = self._challenges.get(registry)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if credential.username and credential.password:
                return f"Basic {basic_token(credential.username, credential.password)}"
            return None
        key = (registry, scopes)
        with self._lock:
            token = self._tokens.get(key)
        if token is None or refresh or not token.fresh:
            token = self._fetch_token(registry, challenge, credential, scopes)
            with self._lock:
                self._tokens[key] = token
        return f"Bearer {token.value}"

    def _fetch_token(
        self, registry: str, challenge: Challenge, credential: Credential, scopes: frozenset[str]
    ) -> Token:
        session: requests.Session = self._host(registry).session
        params: list[tuple[str, str]] = (
            [("service", challenge.service)] if challenge.service else []
        )
        params += [("scope", s) for s in sorted(scopes)]
        started = time.monotonic()
        try:
            if credential.identity_token:
                form = dict(params[:1])
                form.update(
                    grant_type="refresh_token",
                    refresh_token=credential.identity_token,
                    client_id="imagesync",
                    scope=" ".join(sorted(scopes)),
                )
                with answers_within(realm_host(challenge.realm), self.timeout):
                    response = session.post(
                        challenge.realm,
                        data=form,
                        timeout=self.timeout,
                        verify=self._realm_verify(registry, challenge.realm),
                        stream=True,
                    )
                    body = _read_token_answer(response, registry)
            else:
                headers = {}
                if credential.username and credential.password:
                    token = basic_token(credential.username, credential.password)
                    headers["Authorization"] = f"Basic {token}"
                with answers_within(realm_host(challenge.realm), self.timeout):
                    response = session.get(
                        challenge.realm,
                        params=params,
                        headers=headers,
                        timeout=self.timeout,
                        verify=self._realm_verify(registry, challenge.realm),
                        stream=True,
                    )
                    body = _read_token_answer(response, registry)
        except requests.exceptions.RequestException as error:
            failure = classify(error, realm_host(challenge.realm), self.timeout)
            message = f"cannot get a token for {registry}: {failure.message}"
            if is_retriable_exception(error):
                raise _TransientTokenError(message, hint=failure.hint) from None
            hint = failure.hint
            if failure.is_tls:
                hint = (
                    f"give the CA with 'ca_file' for {registry} in the registries config (it "
                    "also covers a token service on the same host), or for the token service's "
                    "host:port"
                )
            raise RegistryError(message, hint) from None
        self._log("GET", challenge.realm, response.status_code, started)
        if response.status_code in (401, 403):
            raise _auth_failed(registry, credential)
        if response.status_code != 200:
            message = f"the token service of {registry} answered {response.status_code}"
            if is_retriable_status(response.status_code):
                raise _TransientTokenError(
                    message,
                    status=response.status_code,
                    retry_after=response.headers.get("Retry-After"),
                )
            raise RegistryError(message, status=response.status_code)
        document = json_object(body, f"the answer of the token service of {registry}")
        try:
            return token_from_response(document)
        except ValueError:
            raise RegistryError(f"the token service of {registry} sent no token") from None

    # -- wire ------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        registry: str,
        path: str,
        headers: Mapping[str, str] | None,
        authorization: str | None,
        params: Mapping[str, str] | None,
        data: Any,
        stream: bool,
        limit: int,
    ) -> requests.Response:
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if authorization:
            all_headers["Authorization"] = authorization
        url = self.url(registry, path)
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        host = self._host(registry)
        session: requests.Session = host.session
        # requests never reads a body here (stream=True); _read_answer reads it to its limit.
        settings = session.merge_environment_settings(url, {}, True, host.verify, None)
        options: dict[str, Any] = {**settings, "timeout": self.timeout}
        request = _prepared(method, url, all_headers, data)
        started = time.monotonic()
        clock = answers_within(
            registry,
            self.timeout,
            floor=BLOB_FLOOR if stream else None,
            from_response=_is_stream(data),
        )
        with host.requests, clock:
            response = session.get_adapter(url).send(request, **options)
            # Reads may be redirected (blob storage); requests drops our Authorization header
            # on a host change and stops after MAX_REDIRECTS. Writes are not followed: a stream
            # body cannot be sent twice, and a registry that redirects an upload is answered
            # with an error (raise_for_status) rather than a guess.
            if response.is_redirect and method in ("GET", "HEAD"):
                response = _follow(session, response, request, options)
            if not stream:
                # Read now, inside the concurrency limit and the deadline.
                _read_answer(response, limit)
        remaining = _rate_limit_remaining(response)
        with self._lock:
            self.request_count += 1
            if remaining is not None:
                self.rate_limit_remaining[registry] = remaining
        self._log(method, response.url, response.status_code, started)
        return response

    def _log(self, method: str, url: str, status: int, started: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s %s -> %d (%.0f ms)", method, redact_url(url), status, elapsed)

    def _wait(
        self,
        attempt: int,
        retry_after: str | None,
        method: str,
        path: str,
        registry: str,
        why: str,
    ) -> None:
        delay = self.retry.delay(attempt, retry_after)
        log.debug(
            "retry %d/%d of %s %s on %s after %s: waiting %.1f s",
            attempt,
            self.retry.attempts - 1,
            method,
            redact_url(path),
            registry,
            why,
            delay,
        )
        self._sleep(delay, f"{method} {redact_url(path)} on {registry}")

    def _sleep(self, delay: float, what: str) -> None:
        if self.stopping.wait(delay):
            raise Stopped(f"stopped while waiting to retry {what}")

    def streams(self, registry: str) -> threading.BoundedSemaphore:
        """Slots for blob streams to ``registry`` (see :class:`RegistryHost`)."""
        streams: threading.BoundedSemaphore = self._host(registry).streams
        return streams

    def _host(self, registry: str) -> RegistryHost:
        with self._lock:
            host = self._hosts.get(registry)
            if host is None:
                host = self._hosts[registry] = RegistryHost(
                    registry, self.config.settings(registry)
                )
            return host

    def _realm_verify(self, registry: str, realm: str) -> bool | str:
        """TLS trust for a token service: its own registries-config entry if it has one; else
        the registry's when it is on the registry's host (Harbor, a registry behind the same
        private CA); else the system's."""
        netloc = urlsplit(realm).netloc.rsplit("@", 1)[-1]
        if netloc in self.config.registries:
            return tls_verify(self.config.settings(netloc))
        if _hostname(netloc) == _hostname(registry):
            return self._host(registry).verify
        return True

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
            raise _unreachable(classify(error, registry, self.timeout), 1) from None
        except requests.exceptions.ConnectionError:
            return "http"
        return "https"


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


def shown_url(url: str) -> str:
    """A URL from a registry, redacted and shortened for a message; never raises."""
    try:
        return excerpt(redact_url(url), 200)
    except ValueError:
        return excerpt(repr(url), 200)


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


class Stopped(RegistryError):
    """The run is being stopped: a retry that was waiting gives up."""


class Unreachable(RegistryError):
    """No answer came: the connection failed, was reset or timed out (after any retries)."""


class AnswerTooLarge(RegistryError):
    """A registry's answer is larger than any answer to that request can be."""


def read_body(response: requests.Response, limit: int, what: str | None = None) -> bytes:
    """The body of ``response``, read whole: the one place that does, so that no registry
    can make imagesync hold more than ``limit`` bytes of one answer. Raises AnswerTooLarge
    (having closed the response) when it is longer — by its Content-Length or by what
    arrives — and lets a body that breaks off raise requests' error. A body read before is
    returned as it was read. ``what`` names the answer in the message (default: the request).
    """
    cached: object = response._content  # False until the body has been read
    if cached is not False:
        return response.content or b""

    def too_large(size: str | None = None) -> AnswerTooLarge:
        response.close()
        name = what or f"{response.request.method} {shown_url(response.url)}"
        told = f"{size}, more than" if size else "more than"
        return AnswerTooLarge(f"{name}: the answer is {told} {limit_text(limit)}")

    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"{declared} bytes")
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_content(64 * 1024):
        chunks.append(chunk)
        received += len(chunk)
        if received > limit:
            raise too_large()
    body = b"".join(chunks)
    response._content = body  # a second look (raise_for_status, .json()) sees the same bytes
    return body


def _read_answer(response: requests.Response, limit: int, what: str | None = None) -> None:
    """Read an answer now; an error answer too long to be a registry's message is dropped
    (the status says enough), any other answer too long raises AnswerTooLarge."""
    if response.request.method == "HEAD":  # no body, whatever Content-Length says
        # Reading the (empty) body hands the connection back to the pool; without the read,
        # closing the response would close the connection, and every HEAD would cost a new
        # one (a TCP and TLS handshake, round trips on a far registry).
        response.raw.read()
        response._content = b""
        return
    if response.status_code < 300:
        read_body(response, limit, what)
        return
    try:
        read_body(response, min(limit, MAX_ERROR_BODY), what)
    except AnswerTooLarge:
        response._content = b""


def _read_token_answer(response: requests.Response, registry: str) -> bytes:
    what = f"the token service of {registry}"
    if response.status_code != 200:
        _read_answer(response, MAX_ERROR_BODY, what)
        return b""
    return read_body(response, MAX_TOKEN_BYTES, what)


def _error_body(response: requests.Response) -> bytes:
    """At most MAX_ERROR_BODY bytes of an error answer; a longer one is not a registry's
    message (ValueError), and is not read further."""
    try:
        return read_body(response, MAX_ERROR_BODY, "the error answer")
    except AnswerTooLarge:
        response._content = b""
        raise ValueError("the error body is too long to be a registry's message") from None


class _StreamRefused(Unreachable):
    """A streamed upload was answered 401 (its token expired between use and check). Like a
    connection that broke midway, the spent body cannot be resent: the caller, which treats
    Unreachable on a streamed upload as a broken transfer, starts the copy again."""


def _discard(response: requests.Response) -> None:
    """Done with a response: read the rest of a short body so that its connection goes back
    to the pool (closing one with unread bytes resets it), or close it when the body is long."""
    with contextlib.suppress(ValueError, requests.exceptions.RequestException):
        _error_body(response)
    response.close()


class _TransientTokenError(TransientError):
    """The token service failed in a way that may pass (5xx, 429, a reset): retried."""


def _prepared(
    method: str, url: str, headers: dict[str, str], data: Any
) -> requests.PreparedRequest:
    """A request ready for the adapter, built without ``Session.prepare_request``.

    That path merges session headers, cookies and netrc credentials into every request, none
    of which a registry conversation uses (oras-py's session refuses all cookies anyway), and
    it cost about a third of a request's CPU time. URLs here are built from parsed references
    or given by the registry, so they need quoting only where a registry left characters raw.
    """
    request = requests.PreparedRequest()
    request.method = method
    request.url = requote_uri(url)
    request.headers = CaseInsensitiveDict(headers)
    request.prepare_body(data, None)
    return request


def _follow(
    session: requests.Session,
    response: requests.Response,
    request: requests.PreparedRequest,
    options: dict[str, Any],
) -> requests.Response:
    """Follow a read's redirects the way ``Session.send`` does; the last response wins.

    requests reads each redirect's body whole before it follows; it is read here first, to a
    limit, so a redirect with a body of gigabytes is not held.
    """
    request._cookies = RequestsCookieJar()  # type: ignore[attr-defined] # redirects carry them
    _read_answer(response, MAX_ERROR_BODY, "a redirect")
    history = [response]
    for hop in session.resolve_redirects(response, request, **options):
        history.append(hop)
        if hop.is_redirect:
            _read_answer(hop, MAX_ERROR_BODY, "a redirect")
    final: requests.Response = history.pop()
    final.history = history
    return final


def _rate_limit_remaining(response: requests.Response) -> int | None:
    """Docker Hub's pull allowance left, from ``ratelimit-remaining: 76;w=21600``."""
    value = response.headers.get("ratelimit-remaining")
    if not value:
        return None
    try:
        return int(value.split(";", 1)[0].strip())
    except ValueError:
        return None


def _hostname(netloc: str) -> str:
    """The host of ``host[:port]`` (IPv6 in brackets), lower case."""
    try:
        return (urlsplit(f"//{netloc}").hostname or netloc).lower()
    except ValueError:
        return netloc.lower()


def _unreachable(failure: NetworkFailure, attempts: int) -> RegistryError:
    """The error for a request that got no answer. TLS problems are settings, not a network
    that broke: they are plain RegistryErrors, which nothing retries as a whole."""
    kind = RegistryError if failure.is_tls else Unreachable
    return kind(failure.after(attempts), failure.hint)


def _is_stream(data: Any) -> bool:
    """Whether a request body is read as it is sent (a file or generator), so sent only once."""
    return data is not None and not isinstance(data, bytes | bytearray | str | dict | list | tuple)


def _refused(
    registry: str, credential: Credential, scopes: frozenset[str], header: str
) -> AuthenticationFailed:
    """The error for a 401 that a fresh token or the credentials did not cure.

    Token registries answer ``error="insufficient_scope"`` when the credentials are valid but
    may not do this (a read-only account pushing): say which rights are missing, not that the
    login failed.
    """
    params = dict(_CHALLENGE_PARAM.findall(header))
    if params.get("error") != "insufficient_scope" or credential.is_anonymous:
        return _auth_failed(registry, credential)
    wanted = params.get("scope") or " ".join(sorted(scopes))
    push = [s for s in wanted.split(" ") if s.startswith("repository:") and "push" in s]
    needed = push or [s for s in wanted.split(" ") if s.startswith("repository:")]
    # The scope comes from the registry's challenge: its words, quoted as such.
    names = excerpt(", ".join(f"{registry}/{s.split(':')[1]}" for s in needed), 300) or registry
    if push:
        return AuthenticationFailed(
            f"the credentials lack push (write) rights for {names}",
            f"plan needs only pull rights, apply needs push rights on the target; the "
            f"credentials came from {credential.origin}",
            status=401,
        )
    return AuthenticationFailed(
        f"the credentials lack pull (read) rights for {names}",
        f"check the access granted to the credentials from {credential.origin}",
        status=401,
    )


def _auth_failed(registry: str, credential: Credential) -> AuthenticationFailed:
    if credential.is_anonymous:
        hint = f"log in to {registry} (docker login) or give credentials for it"
    else:
        hint = f"check the credentials from {credential.origin}"
    return AuthenticationFailed(f"authentication failed for {registry}", hint, status=401)


def raise_for_status(response: requests.Response, what: str) -> None:
    """Turn an error response into a RegistryError carrying the registry's own message.

    A redirect that is still a redirect here was not followed (a write) or has no Location:
    either way the request did not do what was asked.
    """
    if response.status_code < 300:
        return
    status = response.status_code
    if status < 400:
        response.close()
        where = response.headers.get("Location") or "nowhere"
        raise RegistryError(
            f"{what}: the registry answered {status}, a redirect to {shown_url(where)}",
            "registries do not redirect this request; check the registry's configuration",
            status=status,
        )
    detail, code = registry_message(response)
    message = f"{what}: {status} {detail}".rstrip()
    if status == 404:
        raise NotFound(message, status=status, code=code)
    if status == 403:
        raise RegistryError(
            message,
            "the credentials lack the rights for this (push needs write access)",
            status=status,
            code=code,
        )
    raise RegistryError(message, status=status, code=code)


def registry_message(response: requests.Response) -> tuple[str, str | None]:
    """The first error's code and message from a registry's JSON error body."""
    try:
        errors = json.loads(_error_body(response)).get("errors") or []
        first = errors[0]
        code = excerpt(str(first.get("code", "")), 100)
        message = excerpt(str(first.get("message", "")), 500)
        return f"{code}: {message}".strip(": "), code or None
    except (ValueError, AttributeError, LookupError, TypeError, RecursionError):
        return excerpt(str(response.reason or ""), 200), None
    except requests.exceptions.RequestException:
        # The body broke off: the status says enough.
        return excerpt(str(response.reason or ""), 200), None
