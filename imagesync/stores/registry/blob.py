"""Blobs: whether a repository holds one, reading one, and mounting one from another
repository of the same registry.

What this run has learnt is kept: a blob's presence in a repository is taken as it was seen
(one that vanished makes the push of the manifest fail; one that appeared is sent again,
harmlessly), and the repositories seen holding a blob, or given it, are mount sources.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from imagesync.content.manifest import Descriptor, sha256_digest
from imagesync.errors import AuthenticationFailed, DigestMismatch, RegistryError
from imagesync.reference import Repository
from imagesync.stores.holders import Holders
from imagesync.stores.registry.answers import Answer, raise_for_status, registry_message
from imagesync.stores.registry.core import Core, Endpoint, Read, content_length
from imagesync.stores.registry.ranged import RangedRead
from imagesync.stores.registry.transport import pull_scope, push_scope
from imagesync.stores.registry.wire import Call
from imagesync.stores.store import MAX_CONFIG_BYTES, MountAnswer, ReadFrom

log = logging.getLogger("imagesync.stores.registry.client")


class Blobs:
    """Blob requests over a :class:`Core`, and what they taught. Thread-safe."""

    def __init__(self, core: Core, holders: Holders) -> None:
        self._core = core
        self._sizes: dict[tuple[str, str], int | None] = {}
        self._probed: set[str] = set()
        self.holders = holders
        # (registry, target, source): pairs whose mount the registry refused in this run.
        self._refused: set[tuple[str, str, str]] = set()
        self._asking: dict[tuple[str, str, str], threading.Lock] = {}

    def size(self, repository: Repository, digest: str) -> int | None:
        """Size of a blob in the target registry, or None when it is not there.

        Pull scope suffices, so plan works with read-only credentials on the target. Asked once
        per run: apply goes by what plan saw.
        """
        key = (str(repository), digest)
        with self._core.lock:
            if key in self._sizes:
                return self._sizes[key]
            if str(repository) in self._core.unknown:
                return None
        size = self._head(repository, digest)
        with self._core.lock:
            self._sizes[key] = size
            if size is not None:
                self.holders.add(repository, digest, given=False)
        return size

    def is_new(self, repository: Repository) -> bool:
        """Ask once whether ``repository`` exists, before asking for its blobs one by one;
        True when it does not (it holds no blob).

        A new repository in the target (a cold mirror) holds no blob: one request that says
        so spares a HEAD per blob. ``tags/list?n=1`` answers 404 NAME_UNKNOWN for it (where the
        distribution registry answers MANIFEST_UNKNOWN for any missing manifest); any other
        answer leaves the blobs to be asked for.
        """
        key = str(repository)
        core = self._core
        with core.lock:
            if key in self._probed or key in core.unknown:
                return key in core.unknown
            self._probed.add(key)
        read = Read(repository, "GET", f"/v2/{repository.path}/tags/list?n=1", pull=False)
        try:
            answer = core.send(Endpoint(repository.endpoint, repository), read)
        except RegistryError as error:  # only a shortcut: the blobs are asked for instead
            log.debug("could not tell whether %s exists: %s", repository, error.message)
            return False
        unknown = answer.status_code == 404 and registry_message(answer)[1] == "NAME_UNKNOWN"
        if unknown:
            with core.lock:
                core.unknown.add(key)
        answer.close()
        return unknown

    def arrived(self, repository: Repository, digest: str, size: int = 0) -> None:
        """``repository`` holds ``digest`` now (imagesync put it there)."""
        with self._core.lock:
            self._sizes[(str(repository), digest)] = size
        self.holders.add(repository, digest, given=True)

    def _head(self, repository: Repository, digest: str) -> int | None:
        path = f"/v2/{repository.path}/blobs/{digest}"
        scopes = frozenset({pull_scope(repository.path)})
        answer = self._core.transport.request(Call("HEAD", repository.endpoint, path, scopes))
        if answer.status_code == 404:
            return None
        raise_for_status(answer, f"HEAD blob {digest} in {repository}")
        return content_length(answer)

    def get(self, repository: Repository, digest: str, *, pull: bool, at: Endpoint | None) -> bytes:
        """A small blob (an image config), read whole and checked against its digest."""
        path = f"/v2/{repository.path}/blobs/{digest}"
        read = Read(repository, "GET", path, pull, at, limit=MAX_CONFIG_BYTES)
        answer = self._core.fetch(read, f"GET blob {digest} from {repository}")
        assert answer is not None
        data = answer.body
        if sha256_digest(data) != digest:
            raise DigestMismatch(f"blob {digest} from {repository} does not match its digest")
        return data

    def mount(self, target: Repository, digest: str, source: Repository) -> MountAnswer:
        """Ask the registry to link a blob from another of its repositories into ``target``.

        A registry that cannot (the blob is not in ``source``, or it does not mount) opens an
        upload session instead (202): the answer carries it, and the copy streams into it, so
        a refused mount costs no request of its own. A registry that refuses the request
        itself is answered by a copy too, without a failed entry or a new token: Harbor's
        ``401`` for a ``from`` project that does not exist (goharbor/harbor#17097) and ``400``
        for a top-level ``from`` (harbor#22078), Docker Hub's cross-origin ``400``
        (google/go-containerregistry#1687), a ``404``. A pair of repositories whose mount was
        refused is not asked again in this run: the copy goes straight to an upload.
        """
        pair = (target.endpoint, target.path, source.path)
        with self._core.lock:
            asking = self._asking.setdefault(pair, threading.Lock())
        # One mount at a time per pair, so that a refusal is known before the next is asked.
        with asking:
            with self._core.lock:
                if pair in self._refused:
                    return MountAnswer(mounted=False)
            answer = self._mount_answer(target, digest, source)
            return self._mounted(pair, target, digest, answer)

    def _mounted(
        self, pair: tuple[str, str, str], target: Repository, digest: str, answer: Answer | None
    ) -> MountAnswer:
        if answer is not None and answer.status_code == 201:
            self.arrived(target, digest)
            return MountAnswer(mounted=True)
        if answer is not None and answer.status_code == 202 and answer.headers.get("Location"):
            # Not this blob (it is not in the source yet): another may mount.
            return MountAnswer(mounted=False, session=self._core.location(target, answer))
        with self._core.lock:  # the request itself was refused: not asked again
            self._refused.add(pair)
        return MountAnswer(mounted=False)

    def _mount_answer(self, target: Repository, digest: str, source: Repository) -> Answer | None:
        """The mount's answer; None for a refusal that a copy answers (logged)."""
        what = f"mount {digest} from {source} into {target}"
        try:
            answer = self._core.transport.request(
                Call(
                    "POST",
                    target.endpoint,
                    f"/v2/{target.path}/blobs/uploads/",
                    frozenset({push_scope(target.path), pull_scope(source.path)}),
                    params={"mount": digest, "from": source.path},
                    refusal_is_answer=True,
                )
            )
        except AuthenticationFailed as error:
            log.debug("%s: %s; copying instead", what, error.message)
            return None
        if answer.status_code in (201, 202):
            return answer
        if 400 <= answer.status_code < 500 and answer.status_code != 429:
            detail, _ = registry_message(answer)
            log.debug("%s: %s %s; copying instead", what, answer.status_code, detail)
            answer.close()
            return None
        raise_for_status(answer, what)
        return None

    @contextmanager
    def read(
        self,
        repository: Repository,
        blob: Descriptor,
        *,
        pull: bool,
        at: Endpoint | None,
        start: ReadFrom | None = None,
    ) -> Iterator[Iterator[bytes]]:
        """The blob's bytes as they arrive (mirrors first), checked as they pass
        (:func:`verified`), from ``start`` on; a body that breaks off is asked for again from
        where it stopped (ranged.py), and raises TransferBroken when that fails. The download
        is the transport's to retry until its answer begins."""
        path = f"/v2/{repository.path}/blobs/{blob.digest}"
        download = RangedRead(
            self._core, blob, Read(repository, "GET", path, pull, at), str(repository), start
        )
        try:
            yield download.chunks()
        finally:
            download.close()
