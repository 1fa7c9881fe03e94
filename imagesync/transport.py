"""HTTP to registries: the one place that owns sessions, TLS, auth, retries and request logs.

Everything above this module speaks in registry hosts, paths and scopes; nothing above it
sets an Authorization header, sleeps for a retry or decides between HTTP and HTTPS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import requests
import requests.adapters
from oras.provider import Registry

from imagesync import __version__
from imagesync.auth import (
    ANONYMOUS,
    Challenge,
    Credential,
    CredentialStore,
    Token,
    basic_token,
    token_from_response,
)
from imagesync.errors import AuthenticationFailed, NotFound, RegistryError
from imagesync.redact import redact_url, secrets
from imagesync.registries import RegistriesConfig, is_loopback
from imagesync.retry import RetryPolicy, is_retriable_exception, is_retriable_status

log = logging.getLogger("imagesync.http")

USER_AGENT = f"imagesync/{__version__}"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
# OpenSSL's words for "the other side does not speak TLS": a plain-HTTP server.
_PLAIN_HTTP_SIGNS = ("wrong version number", "record layer failure", "unknown protocol")


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
    ) -> None:
        self.config = config or RegistriesConfig()
        self.credentials = credentials or CredentialStore()
        self.retry = retry or RetryPolicy()
        self._lock = threading.Lock()
        self._sessions: dict[str, requests.Session] = {}
        self._schemes: dict[str, str] = {}
        self._limits: dict[str, threading.BoundedSemaphore] = {}
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, frozenset[str]], Token] = {}
        self.request_count = 0
        self.rate_limit_remaining: dict[str, int] = {}

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
    ) -> requests.Response:
        """Send one request, authenticating and retrying as needed; return any final response.

        ``path`` starts with ``/v2/`` or is an absolute URL the registry gave us (upload
        locations). ``retry=False`` is for bodies that cannot be sent twice (streams): the
        caller restarts the whole operation instead.
        """
        scope_set = frozenset(scopes)
        attempts = self.retry.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._authenticated(
                    method, registry, path, scope_set, headers, params, data, stream
                )
            except requests.exceptions.SSLError as error:
                raise _tls_error(registry, error) from None
            except requests.exceptions.RequestException as error:
                if attempt < attempts and is_retriable_exception(error):
                    self._wait(attempt, None, method, path, registry, type(error).__name__)
                    continue
                raise RegistryError(
                    f"cannot reach {registry}: {secrets(str(error))}",
                    "check the registry host and your network",
                ) from None
            if attempt < attempts and is_retriable_status(response.status_code):
                retry_after = response.headers.get("Retry-After")
                response.close()
                self._wait(attempt, retry_after, method, path, registry, str(response.status_code))
                continue
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def pause_before_retry(self, attempt: int, what: str, error: Exception) -> None:
        """Wait before restarting an operation that retries as a whole (a streamed upload)."""
        delay = self.retry.delay(attempt)
        log.debug("retry %d of %s after %s: waiting %.1f s", attempt, what, error, delay)
        time.sleep(delay)

    def url(self, registry: str, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self._scheme(registry)}://{registry}{path}"

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
    ) -> requests.Response:
        credential = self.credentials.for_registry(registry)
        auth = self._authorization(registry, credential, scopes, refresh=False)
        response = self._send(method, registry, path, headers, auth, params, data, stream)
        if response.status_code != 401:
            return response
        challenge = Challenge.parse(response.headers.get("WWW-Authenticate", ""))
        if challenge is None or (auth is not None and credential.bearer):
            raise _auth_failed(registry, credential)
        with self._lock:
            self._challenges[registry] = challenge
        response.close()
        # A stream body is spent once sent; ping-style requests carry no body, so a 401 on a
        # streamed upload can only happen when the token expired mid-upload: the caller retries.
        auth = self._authorization(registry, credential, scopes, refresh=auth is not None)
        if auth is None:
            raise _auth_failed(registry, credential)
        response = self._send(method, registry, path, headers, auth, params, data, stream)
        if response.status_code == 401:
            response.close()
            raise _auth_failed(registry, credential)
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
        session = self._session(registry)
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
                response = session.post(
                    challenge.realm, data=form, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
                )
            else:
                headers = {}
                if credential.username and credential.password:
                    token = basic_token(credential.username, credential.password)
                    headers["Authorization"] = f"Basic {token}"
                response = session.get(
                    challenge.realm,
                    params=params,
                    headers=headers,
                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                )
        except requests.exceptions.SSLError as error:
            raise _tls_error(challenge.realm, error) from None
        except requests.exceptions.RequestException as error:
            raise RegistryError(
                f"cannot reach the token service of {registry}: {secrets(str(error))}"
            ) from None
        self._log("GET", challenge.realm, response.status_code, started)
        if response.status_code in (401, 403):
            raise _auth_failed(registry, credential)
        if response.status_code != 200:
            raise RegistryError(
                f"the token service of {registry} answered {response.status_code}",
                status=response.status_code,
            )
        try:
            return token_from_response(response.json())
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
    ) -> requests.Response:
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if authorization:
            all_headers["Authorization"] = authorization
        url = self.url(registry, path)
        started = time.monotonic()
        with self._limit(registry):
            response = self._session(registry).request(
                method,
                url,
                headers=all_headers,
                params=params,
                data=data,
                stream=stream,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                verify=self._verify(registry),
                # Redirects to blob storage must not carry our Authorization header; requests
                # drops it on a host change, and we do not follow more than its default.
                allow_redirects=True,
            )
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
        time.sleep(delay)

    def _limit(self, registry: str) -> threading.BoundedSemaphore:
        with self._lock:
            if registry not in self._limits:
                limit = self.config.settings(registry).max_concurrency
                self._limits[registry] = threading.BoundedSemaphore(limit)
            return self._limits[registry]

    def _verify(self, registry: str) -> bool | str:
        settings = self.config.settings(registry)
        if settings.ca_file is not None:
            return str(settings.ca_file)
        return not settings.insecure

    def _session(self, registry: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(registry)
            if session is None:
                # oras-py's Registry sets up the session (cookie policy for registries such as
                # Harbor); the pool is sized to the concurrency we run against this registry.
                session = Registry(hostname=registry, insecure=False).session
                size = self.config.settings(registry).max_concurrency * 2
                adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=size)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._sessions[registry] = session
            return session

    def _scheme(self, registry: str) -> str:
        with self._lock:
            known = self._schemes.get(registry)
        if known:
            return known
        scheme = "https"
        settings = self.config.settings(registry)
        if settings.insecure:
            scheme = "http"
        elif is_loopback(registry) and settings.ca_file is None:
            scheme = self._probe_loopback(registry)
        with self._lock:
            self._schemes[registry] = scheme
        return scheme

    def _probe_loopback(self, registry: str) -> str:
        """Loopback registries may speak plain HTTP; one that speaks TLS must verify."""
        try:
            self._session(registry).get(
                f"https://{registry}/v2/", timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
            ).close()
        except requests.exceptions.SSLError as error:
            if any(sign in str(error).lower() for sign in _PLAIN_HTTP_SIGNS):
                return "http"
            raise _tls_error(registry, error) from None
        except requests.exceptions.ConnectionError:
            return "http"
        return "https"


def _rate_limit_remaining(response: requests.Response) -> int | None:
    """Docker Hub's pull allowance left, from ``ratelimit-remaining: 76;w=21600``."""
    value = response.headers.get("ratelimit-remaining")
    if not value:
        return None
    try:
        return int(value.split(";", 1)[0].strip())
    except ValueError:
        return None


def _tls_error(registry: str, error: Exception) -> RegistryError:
    return RegistryError(
        f"TLS error talking to {registry}: {secrets(str(error))}",
        f"give the registry's CA with 'ca_file' for {registry} in the registries config, "
        "or list it as 'insecure: true' if it serves plain HTTP",
    )


def _auth_failed(registry: str, credential: Credential) -> AuthenticationFailed:
    if credential is ANONYMOUS or credential.is_anonymous:
        hint = f"log in to {registry} (docker login) or give credentials for it"
    else:
        hint = f"check the credentials from {credential.origin}"
    return AuthenticationFailed(f"authentication failed for {registry}", hint, status=401)


def raise_for_status(response: requests.Response, what: str) -> None:
    """Turn an error response into a RegistryError carrying the registry's own message."""
    if response.status_code < 400:
        return
    detail, code = registry_message(response)
    status = response.status_code
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
        errors = response.json().get("errors") or []
        first = errors[0]
        code = str(first.get("code", ""))
        return secrets(f"{code}: {first.get('message', '')}".strip(": ")), code or None
    except (ValueError, AttributeError, IndexError, TypeError):
        return secrets(response.reason or ""), None
