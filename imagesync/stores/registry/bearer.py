"""The auth layer: the credentials a request carries, and the bearer-token dance per scope.

A request goes out with what is known to work (a token for its registry and scopes, basic
credentials, or nothing yet); a 401 with a challenge teaches the scheme, and the request is
sent once more with a fresh token. A body that cannot be sent twice (a streamed upload) is
not: the fresh token is kept and the caller starts the transfer over (:class:`StreamRefused`).
Tokens are cached per registry and scope (design §7): a token for one repository says nothing
about another.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from imagesync.content.documents import json_object
from imagesync.errors import AuthenticationFailed, RegistryError
from imagesync.redact import excerpt
from imagesync.retry import is_retriable_status
from imagesync.stores.registry.answers import MAX_ERROR_BODY, Answer, read_answer, read_body
from imagesync.stores.registry.auth import (
    Challenge,
    Credential,
    CredentialStore,
    Token,
    basic_token,
    token_from_response,
)
from imagesync.stores.registry.deadline import answers_within
from imagesync.stores.registry.host import RegistryHost, tls_verify
from imagesync.stores.registry.netfailure import classify, realm_host
from imagesync.stores.registry.registries import RegistriesConfig
from imagesync.stores.registry.retrying import (
    TransientTokenError,
    Unreachable,
    is_retriable_exception,
)
from imagesync.stores.registry.wire import Call, log_request

MAX_TOKEN_BYTES = 1024 * 1024
# key="value" pairs of a WWW-Authenticate challenge (realm, service, scope, error).
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')

# Sends a call once with the given Authorization value (None: without one).
Sender = Callable[[Call, "str | None"], Answer]


class StreamRefused(Unreachable):
    """A streamed upload was answered 401 (its token expired between use and check). Like a
    connection that broke midway, the spent body cannot be resent: the caller, which treats
    Unreachable on a streamed upload as a broken transfer, starts the copy again."""


@dataclass(frozen=True, slots=True)
class _Who:
    """Whom a token is asked for: the registry, the identity there, the scopes wanted."""

    registry: str
    credential: Credential
    scopes: frozenset[str]


class Authenticator:
    """Authorization for each call. Thread-safe: challenges and tokens are kept under a lock."""

    def __init__(
        self,
        config: RegistriesConfig,
        credentials: CredentialStore,
        hosts: Callable[[str], RegistryHost],
        timeout: float,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._hosts = hosts
        self._timeout = timeout
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, frozenset[str]], Token] = {}

    def send(self, call: Call, send: Sender) -> Answer:
        """``call``'s answer through ``send``, with the credentials it needs."""
        who = _Who(call.registry, self._credentials.for_registry(call.registry), call.scopes)
        auth = self._authorization(who, refresh=False)
        answer = send(call, auth)
        if answer.status_code != 401 or (call.refusal_is_answer and auth is not None):
            return answer
        header = answer.headers.get("WWW-Authenticate", "")
        answer.close()
        challenge = Challenge.parse(header)
        if challenge is None or (auth is not None and who.credential.bearer):
            raise _refused(who, header)
        with self._lock:
            self._challenges[call.registry] = challenge
        auth = self._authorization(who, refresh=auth is not None)
        if auth is None:
            raise _auth_failed(who)
        if not call.replayable:
            # The body went out with the refused request and cannot be sent again (resending
            # it would send nothing, and the registry would wait for the bytes it was promised).
            # The new token is cached now; the caller starts the transfer over.
            raise StreamRefused(
                f"{call.registry} refused the token sent with a streamed upload (it expired on "
                "the way)"
            )
        answer = send(call, auth)
        if answer.status_code == 401:
            header = answer.headers.get("WWW-Authenticate", "")
            answer.close()
            raise _refused(who, header)
        return answer

    def _authorization(self, who: _Who, *, refresh: bool) -> str | None:
        credential = who.credential
        if credential.bearer:
            return f"Bearer {credential.bearer}"
        challenge = self._challenges.get(who.registry)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if credential.username and credential.password:
                return f"Basic {basic_token(credential.username, credential.password)}"
            return None
        key = (who.registry, who.scopes)
        with self._lock:
            token = self._tokens.get(key)
        if token is None or refresh or not token.fresh:
            token = self._fetch_token(who, challenge)
            with self._lock:
                self._tokens[key] = token
        return f"Bearer {token.value}"

    def _fetch_token(self, who: _Who, challenge: Challenge) -> Token:
        started = time.monotonic()
        try:
            with answers_within(realm_host(challenge.realm), self._timeout):
                response = self._ask_token_service(who, challenge)
                body = _read_token_answer(response, who.registry)
        except requests.exceptions.RequestException as error:
            raise self._token_service_failed(who.registry, challenge, error) from None
        log_request("GET", challenge.realm, response.status_code, started)
        if response.status_code in (401, 403):
            raise _auth_failed(who)
        if response.status_code != 200:
            message = f"the token service of {who.registry} answered {response.status_code}"
            if is_retriable_status(response.status_code):
                raise TransientTokenError(
                    message,
                    status=response.status_code,
                    retry_after=response.headers.get("Retry-After"),
                )
            raise RegistryError(message, status=response.status_code)
        document = json_object(body, f"the answer of the token service of {who.registry}")
        try:
            return token_from_response(document)
        except ValueError:
            raise RegistryError(f"the token service of {who.registry} sent no token") from None

    def _ask_token_service(self, who: _Who, challenge: Challenge) -> requests.Response:
        """The token service's response, its body not read yet: an identity (refresh) token
        is exchanged by POST (OAuth2), anything else asks by GET, with basic credentials if
        there are any."""
        session: requests.Session = self._hosts(who.registry).session
        verify = self._realm_verify(who.registry, challenge.realm)
        service = [("service", challenge.service)] if challenge.service else []
        credential = who.credential
        if credential.identity_token:
            form = dict(service)
            form.update(
                grant_type="refresh_token",
                refresh_token=credential.identity_token,
                client_id="imagesync",
                scope=" ".join(sorted(who.scopes)),
            )
            return session.post(
                challenge.realm, data=form, timeout=self._timeout, verify=verify, stream=True
            )
        headers = {}
        if credential.username and credential.password:
            headers["Authorization"] = (
                f"Basic {basic_token(credential.username, credential.password)}"
            )
        params = service + [("scope", s) for s in sorted(who.scopes)]
        return session.get(
            challenge.realm,
            params=params,
            headers=headers,
            timeout=self._timeout,
            verify=verify,
            stream=True,
        )

    def _token_service_failed(
        self, registry: str, challenge: Challenge, error: requests.exceptions.RequestException
    ) -> RegistryError:
        failure = classify(error, realm_host(challenge.realm), self._timeout)
        message = f"cannot get a token for {registry}: {failure.message}"
        if is_retriable_exception(error):
            return TransientTokenError(message, hint=failure.hint)
        hint = failure.hint
        if failure.is_tls:
            hint = (
                f"give the CA with 'ca_file' for {registry} in the registries config (it also "
                "covers a token service on the same host), or for the token service's host:port"
            )
        return RegistryError(message, hint)

    def _realm_verify(self, registry: str, realm: str) -> bool | str:
        """TLS trust for a token service: its own registries-config entry if it has one; else
        the registry's when it is on the registry's host (Harbor, a registry behind the same
        private CA); else the system's."""
        netloc = urlsplit(realm).netloc.rsplit("@", 1)[-1]
        if netloc in self._config.registries:
            return tls_verify(self._config.settings(netloc))
        if _hostname(netloc) == _hostname(registry):
            return self._hosts(registry).verify
        return True


def _read_token_answer(response: requests.Response, registry: str) -> bytes:
    what = f"the token service of {registry}"
    if response.status_code != 200:
        read_answer(response, MAX_ERROR_BODY, what)
        return b""
    return read_body(response, MAX_TOKEN_BYTES, what)


def _hostname(netloc: str) -> str:
    """The host of ``host[:port]`` (IPv6 in brackets), lower case."""
    try:
        return (urlsplit(f"//{netloc}").hostname or netloc).lower()
    except ValueError:
        return netloc.lower()


def _refused(who: _Who, header: str) -> AuthenticationFailed:
    """The error for a 401 that a fresh token or the credentials did not cure.

    Token registries answer ``error="insufficient_scope"`` when the credentials are valid but
    may not do this (a read-only account pushing): say which rights are missing, not that the
    login failed.
    """
    params = dict(_CHALLENGE_PARAM.findall(header))
    if params.get("error") != "insufficient_scope" or who.credential.is_anonymous:
        return _auth_failed(who)
    wanted = params.get("scope") or " ".join(sorted(who.scopes))
    push = [s for s in wanted.split(" ") if s.startswith("repository:") and "push" in s]
    needed = push or [s for s in wanted.split(" ") if s.startswith("repository:")]
    # The scope comes from the registry's challenge: its words, quoted as such.
    names = ", ".join(f"{who.registry}/{s.split(':')[1]}" for s in needed)
    names = excerpt(names, 300) or who.registry
    origin = who.credential.origin
    if push:
        return AuthenticationFailed(
            f"the credentials lack push (write) rights for {names}",
            f"plan needs only pull rights, apply needs push rights on the target; the "
            f"credentials came from {origin}",
            status=401,
        )
    return AuthenticationFailed(
        f"the credentials lack pull (read) rights for {names}",
        f"check the access granted to the credentials from {origin}",
        status=401,
    )


def _auth_failed(who: _Who) -> AuthenticationFailed:
    if who.credential.is_anonymous:
        hint = f"log in to {who.registry} (docker login) or give credentials for it"
    else:
        hint = f"check the credentials from {who.credential.origin}"
    return AuthenticationFailed(f"authentication failed for {who.registry}", hint, status=401)
