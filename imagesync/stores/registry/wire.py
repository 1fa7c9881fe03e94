"""The sending layer: one request on the wire, its redirects and its answer, within its time.

Below the auth and retry layers (transport.py): nothing here knows about tokens or second
tries. It builds the request, sends it through the host's adapter inside the host's
concurrency limit and the answer's deadline (deadline.py), follows a read's redirects, and
reads an answer that is not a stream to its limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from imagesync import __version__
from imagesync.redact import redact_url
from imagesync.stores.registry.answers import (
    MAX_ANSWER_BYTES,
    MAX_ERROR_BODY,
    Answer,
    read_answer,
)
from imagesync.stores.registry.deadline import BLOB_FLOOR, answers_within
from imagesync.stores.registry.host import RegistryHost

log = logging.getLogger("imagesync.http")

USER_AGENT = f"imagesync/{__version__}"


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the layers see it: what to send where, and how its answer is read.

    ``path`` starts with ``/v2/`` or is an absolute URL the registry gave (upload locations).
    ``stream``: the caller reads the body (a blob) from the answer's ``raw``, which must keep
    up the throughput floor of deadline.py; otherwise the body is read here, whole, to
    ``limit`` bytes (an error's to MAX_ERROR_BODY), within the timeout, and a longer one
    raises AnswerTooLarge.
    """

    method: str
    registry: str
    path: str
    # The token's scopes (transport.pull_scope, push_scope); none: the registry's own rules.
    scopes: frozenset[str] = frozenset()
    headers: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None
    data: Any = None
    stream: bool = False
    limit: int = MAX_ANSWER_BYTES
    # A 401 to credentials already sent is an answer, not a reason for a new token (a mount
    # Harbor refuses with 401: the copy follows, design §16).
    refusal_is_answer: bool = False

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again: a file or generator is read as it is sent."""
        data = self.data
        return data is None or isinstance(data, bytes | bytearray | str | dict | list | tuple)


def send(
    host: RegistryHost, url: str, call: Call, authorization: str | None, timeout: float
) -> Answer:
    """Send ``call`` to ``url`` once, with ``authorization`` if given; the answer, its body
    read unless the call streams."""
    headers = {"User-Agent": USER_AGENT, **(call.headers or {})}
    if authorization:
        headers["Authorization"] = authorization
    if call.params:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(call.params)}"
    session: requests.Session = host.session
    # requests never reads a body here (stream=True); read_answer reads it to its limit.
    settings = session.merge_environment_settings(url, {}, True, host.verify, None)
    options: dict[str, Any] = {**settings, "timeout": timeout}
    request = _prepared(call.method, url, headers, call.data)
    clock = answers_within(
        call.registry,
        timeout,
        floor=BLOB_FLOOR if call.stream else None,
        from_response=not call.replayable,
    )
    body: bytes | None = None
    with host.requests, clock:
        response = session.get_adapter(url).send(request, **options)
        # Reads may be redirected (blob storage); requests drops our Authorization header on a
        # host change and stops after MAX_REDIRECTS. Writes are not followed: a stream body
        # cannot be sent twice, and a registry that redirects an upload is answered with an
        # error (raise_for_status) rather than a guess.
        if response.is_redirect and call.method in ("GET", "HEAD"):
            response = _follow(session, response, request, options)
        if not call.stream:
            # Read now, inside the concurrency limit and the deadline.
            body = read_answer(response, call.limit)
    return Answer(response, body)


def log_request(method: str, url: str, status: int, started: float) -> None:
    """The --debug line of a request: method, redacted URL, status, time."""
    if log.isEnabledFor(logging.DEBUG):
        elapsed = (time.monotonic() - started) * 1000
        log.debug("%s %s -> %d (%.0f ms)", method, redact_url(url), status, elapsed)


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
    # Redirects carry a cookie jar (empty: a registry conversation keeps no cookies); it is
    # given only here, as building one costs CPU on every request.
    request.prepare_cookies(RequestsCookieJar())
    read_answer(response, MAX_ERROR_BODY, "a redirect")
    history = [response]
    for hop in session.resolve_redirects(response, request, **options):
        history.append(hop)
        if hop.is_redirect:
            read_answer(hop, MAX_ERROR_BODY, "a redirect")
    final: requests.Response = history.pop()
    final.history = history
    return final
