"""A registry's answer, read to a limit, and what its errors say.

requests caches a body it read itself (``Response.content``), whole and unbounded. Answers
here are read by :func:`read_body`, to a limit, and kept beside the response in an
:class:`Answer`, so that no registry can make imagesync hold more than a limit of one answer
and nothing writes into requests' objects.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from imagesync.errors import NotFound, RegistryError
from imagesync.inputfile import limit_text
from imagesync.redact import excerpt, redact_url

# Bodies read whole are read to a limit (callers pass larger ones for manifests, tag lists,
# referrers): a registry that sends more is broken or hostile, and is not read further.
MAX_ANSWER_BYTES = 1024 * 1024
MAX_ERROR_BODY = 64 * 1024


class AnswerTooLarge(RegistryError):
    """A registry's answer is larger than any answer to that request can be."""


class Answer:
    """requests' response (status, headers, the raw stream of a blob) and its body, once read.

    The body of an answer read whole is read by the sending layer; a streamed answer's body is
    the caller's to read from ``raw``, except an error's, which :meth:`error_body` reads.
    """

    __slots__ = ("_body", "response")

    def __init__(self, response: requests.Response, body: bytes | None) -> None:
        self.response = response
        self._body = body

    @property
    def status_code(self) -> int:
        status: int = self.response.status_code
        return status

    @property
    def headers(self) -> CaseInsensitiveDict[str]:
        return self.response.headers

    @property
    def url(self) -> str:
        return str(self.response.url)

    @property
    def raw(self) -> Any:
        return self.response.raw

    @property
    def links(self) -> dict[Any, Any]:
        return self.response.links

    @property
    def body(self) -> bytes:
        """The body read whole (empty for a streamed answer: read ``raw``)."""
        return self._body or b""

    def error_body(self) -> bytes:
        """At most MAX_ERROR_BODY bytes of an error answer; empty when it was longer (then it
        is no registry's message, and is not read further)."""
        if self._body is None:
            try:
                self._body = read_body(self.response, MAX_ERROR_BODY, "the error answer")
            except AnswerTooLarge:
                self._body = b""
        return self._body

    def discard(self) -> None:
        """Done with the answer: read the rest of a short body so that its connection goes
        back to the pool (closing one with unread bytes resets it), then close it."""
        with contextlib.suppress(requests.exceptions.RequestException):
            self.error_body()
        self.response.close()

    def close(self) -> None:
        self.response.close()


def read_body(response: requests.Response, limit: int, what: str | None = None) -> bytes:
    """The body of ``response``, read whole: the one place that does. Raises AnswerTooLarge
    (having closed the response) when it is longer than ``limit`` — by its Content-Length or by
    what arrives — and lets a body that breaks off raise requests' error. ``what`` names the
    answer in the message (default: the request)."""

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
    return b"".join(chunks)


def read_answer(response: requests.Response, limit: int, what: str | None = None) -> bytes:
    """Read an answer now; an error answer too long to be a registry's message reads as empty
    (the status says enough), any other answer too long raises AnswerTooLarge."""
    if response.request.method == "HEAD":  # no body, whatever Content-Length says
        # Reading the (empty) body hands the connection back to the pool; without the read,
        # closing the response would close the connection, and every HEAD would cost a new
        # one (a TCP and TLS handshake, round trips on a far registry).
        response.raw.read()
        return b""
    if response.status_code < 300:
        return read_body(response, limit, what)
    try:
        return read_body(response, min(limit, MAX_ERROR_BODY), what)
    except AnswerTooLarge:
        return b""


def shown_url(url: str) -> str:
    """A URL from a registry, redacted and shortened for a message; never raises."""
    try:
        return excerpt(redact_url(url), 200)
    except ValueError:
        return excerpt(repr(url), 200)


def raise_for_status(answer: Answer, what: str) -> None:
    """Turn an error answer into a RegistryError carrying the registry's own message.

    A redirect that is still a redirect here was not followed (a write) or has no Location:
    either way the request did not do what was asked.
    """
    status = answer.status_code
    if status < 300:
        return
    if status < 400:
        answer.close()
        where = answer.headers.get("Location") or "nowhere"
        raise RegistryError(
            f"{what}: the registry answered {status}, a redirect to {shown_url(where)}",
            "registries do not redirect this request; check the registry's configuration",
            status=status,
        )
    detail, code = registry_message(answer)
    message = f"{what}: {status} {detail}".rstrip()
    if status == 404:
        raise NotFound(message, status=status, code=code)
    if status == 403:
        raise RegistryError(message, _denied_hint(answer), status=status, code=code)
    raise RegistryError(message, status=status, code=code)


# /v2/<repository>/manifests|blobs|tags|referrers/...: the repository a request was about.
_REPOSITORY_PATH = re.compile(r"/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")


def _denied_hint(answer: Answer) -> str:
    """What a 403 means for this request: a read lacks pull rights on a source (or the
    target, for a look before a write); only a write needs push rights."""
    request = answer.response.request
    found = _REPOSITORY_PATH.search(urlsplit(answer.response.url or request.url or "").path)
    on = f" on {excerpt(found.group(1), 200)}" if found else ""
    if request.method in ("GET", "HEAD"):
        return (
            f"the credentials lack pull rights{on}: check the login for this registry "
            "(docker login, a credential helper) and the repository's permissions"
        )
    return f"the credentials lack push rights{on}: writing to the target needs write access"


def registry_message(answer: Answer) -> tuple[str, str | None]:
    """The first error's code and message from a registry's JSON error body."""
    try:
        errors = json.loads(answer.error_body()).get("errors") or []
        first = errors[0]
        code = excerpt(str(first.get("code", "")), 100)
        message = excerpt(str(first.get("message", "")), 500)
        return f"{code}: {message}".strip(": "), code or None
    except (ValueError, AttributeError, LookupError, TypeError, RecursionError):
        return excerpt(str(answer.response.reason or ""), 200), None
    except requests.exceptions.RequestException:
        # The body broke off: the status says enough.
        return excerpt(str(answer.response.reason or ""), 200), None
