"""What every registry verb shares: the transport, the endpoints a read goes to, and the
repositories known to be missing.

Pulls go through the registry's mirrors first (registries config), pushes go to the registry
itself. The verbs (manifest.py, tag.py, referrers.py, blob.py, upload.py) are small classes
over one :class:`Core`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from urllib.parse import urljoin

from imagesync.errors import RegistryError
from imagesync.reference import Repository
from imagesync.stores.registry.answers import (
    MAX_ANSWER_BYTES,
    Answer,
    raise_for_status,
    registry_message,
    shown_url,
)
from imagesync.stores.registry.transport import Transport, pull_scope
from imagesync.stores.registry.wire import Call

log = logging.getLogger("imagesync.stores.registry.client")


@dataclass(frozen=True)
class Endpoint:
    """Where a pull is served from: the registry itself or one of its mirrors."""

    host: str
    repository: Repository


@dataclass(frozen=True, slots=True)
class Read:
    """A read request: which repository, where (``pull``: mirrors first; ``at``: that endpoint
    only), and how its answer is taken."""

    repository: Repository
    method: str
    path: str
    pull: bool
    at: Endpoint | None = None
    headers: dict[str, str] | None = None
    stream: bool = False
    limit: int = MAX_ANSWER_BYTES


class Core:
    """The transport and the endpoints of reads. Thread-safe."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.lock = threading.Lock()
        # Repositories their own registry called unknown (404 NAME_UNKNOWN): they hold no
        # blob, so asking for each one would be a request per blob for nothing.
        self.unknown: set[str] = set()

    def endpoints(
        self, repository: Repository, pull: bool, at: Endpoint | None = None
    ) -> list[Endpoint]:
        if at is not None:
            return [at]
        own = Endpoint(repository.endpoint, repository)
        if not pull:
            return [own]
        mirrors = self.transport.config.settings(repository.registry).mirrors
        return [Endpoint(host, repository) for host in mirrors] + [own]

    def fetch(self, read: Read, what: str, *, missing_ok: bool = False) -> Answer | None:
        """GET a body of at most ``read.limit`` bytes (mirrors first); ``missing_ok``: None
        for a 404. The transport reads it to that limit."""
        answer, _ = self.read(read)
        if missing_ok and answer.status_code == 404:
            if not read.pull and read.at is None and registry_message(answer)[1] == "NAME_UNKNOWN":
                with self.lock:
                    self.unknown.add(str(read.repository))
            return None
        raise_for_status(answer, what)
        return answer

    def read(self, read: Read) -> tuple[Answer, Endpoint]:
        """A read request, tried on each mirror, then on the registry itself (or on ``at``
        only); the answer, and the endpoint that gave it.

        A mirror that fails or lacks the content is passed over; the registry's own answer,
        whatever it is, is returned for the caller to judge. When the registry cannot be
        reached either, the error says what the mirrors answered: "cannot resolve host" alone
        would hide that a mirror was asked and lacked the content.
        """
        endpoints = self.endpoints(read.repository, read.pull, read.at)
        passed: list[str] = []
        for endpoint in endpoints[:-1]:
            try:
                answer = self.send(endpoint, read)
            except RegistryError as error:
                log.debug("mirror %s failed, trying the next: %s", endpoint.host, error)
                passed.append(f"mirror {endpoint.host} failed: {error.message}")
                continue
            if answer.status_code < 400:
                return answer, endpoint
            passed.append(f"mirror {endpoint.host} answered {answer.status_code}")
            answer.close()
        try:
            return self.send(endpoints[-1], read), endpoints[-1]
        except RegistryError as error:
            if passed:
                error.message = f"{error.message}, and {'; '.join(passed)}"
            raise

    def send(self, endpoint: Endpoint, read: Read) -> Answer:
        """``read`` sent to ``endpoint`` only, with pull rights on its repository."""
        return self.transport.request(
            Call(
                read.method,
                endpoint.host,
                read.path,
                frozenset({pull_scope(endpoint.repository.path)}),
                headers=read.headers,
                stream=read.stream,
                limit=read.limit,
            )
        )

    def location(self, target: Repository, answer: Answer) -> str:
        """The upload location an answer gives, as an absolute URL on the target registry."""
        location = answer.headers.get("Location")
        if not location:
            raise RegistryError(f"{target.endpoint} started an upload but sent no Location")
        try:
            absolute = urljoin(self.transport.url(target.endpoint, "/"), location)
        except ValueError:
            absolute = ""
        if not self.transport.on_registry(target.endpoint, absolute):
            # Sending our credentials elsewhere (or in plain text) is never what a registry
            # should ask for.
            raise RegistryError(
                f"{target.endpoint} sent an upload location on another host or scheme: "
                f"{shown_url(location)}",
                "check the registry's configuration (its public URL, X-Forwarded-Proto)",
            )
        return absolute


def media_type(answer: Answer) -> str:
    """The Content-Type without its parameters (``; charset=utf-8``)."""
    return str(answer.headers.get("Content-Type", "")).split(";")[0].strip()


def content_length(answer: Answer) -> int:
    """Content-Length as a number; a missing or malformed one counts as 0 (unknown)."""
    value = (answer.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else 0


def next_link(answer: Answer) -> str | None:
    link = answer.links.get("next", {}).get("url")
    return str(link) if link else None
