"""Registries as a store: the views of one client that a run needs.

One :class:`RegistryClient` serves a whole run (its connections, tokens and what it has learnt
are shared), seen three ways:

- the sources (``pull``): reads go to a registry's mirrors first, then to the registry;
- the target: reads and writes go to the registry itself;
- what :meth:`locate` hands back with an image it found: the one endpoint that answered (a
  mirror, or the registry), and nothing else, for the signatures and referrers of that image.

A registry store answers content verbs only. What the client learns of the run from the
answers (where blobs are, which repositories are new, pulls left) and its stop are the run's
(:class:`imagesync.stores.run.RunContext`), reached through :class:`ClientRun`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from imagesync.content.manifest import Descriptor, Manifest
from imagesync.reference import Reference, Repository
from imagesync.stores.registry.client import Endpoint, RegistryClient
from imagesync.stores.store import BlobOpener, Located, MountAnswer, Progress, ReadFrom

if TYPE_CHECKING:
    from collections.abc import Iterator


class RegistryStore:
    """A view of a :class:`RegistryClient`: through mirrors (``pull``), the registry itself, or
    one endpoint only (``at``, a host)."""

    def __init__(self, client: RegistryClient, *, pull: bool, at: str | None = None) -> None:
        self.client = client
        self._pull = pull
        self._at = at

    @property
    def where(self) -> str:
        if self._at is not None:
            return self._at
        return "the source registries" if self._pull else "the target registry"

    def _endpoint(self, repository: Repository) -> Endpoint | None:
        return Endpoint(self._at, repository) if self._at is not None else None

    # -- manifests -----------------------------------------------------------------------

    def locate(self, ref: Reference) -> Located | None:
        located = self.client.locate(ref, pull=self._pull, at=self._endpoint(ref.repository))
        if located is None:
            return None
        descriptor, endpoint = located
        return Located(descriptor, RegistryStore(self.client, pull=False, at=endpoint.host))

    def head_manifest(self, ref: Reference) -> Descriptor | None:
        return self.client.head_manifest(ref, pull=self._pull, at=self._endpoint(ref.repository))

    def get_manifest(self, ref: Reference) -> Manifest:
        return self.client.get_manifest(ref, pull=self._pull, at=self._endpoint(ref.repository))

    def find_manifest(self, ref: Reference) -> Manifest | None:
        return self.client.find_manifest(ref, pull=self._pull, at=self._endpoint(ref.repository))

    def known_manifest(self, ref: Reference) -> Manifest | None:
        # Every read of a registry is a request (Docker Hub and Harbor count manifest GETs),
        # and what this run happens to hold already depends on which entry came first: a plan
        # that used it would differ from run to run.
        return None

    def put_manifest(
        self,
        repository: Repository,
        reference: str,
        manifest: Manifest,
        *,
        replacing: str | None = None,
    ) -> None:
        # A registry has no conditional write: write_tag's look right before is the check.
        self.client.put_manifest(repository, reference, manifest)

    # -- tags and referrers --------------------------------------------------------------

    def list_tags(self, repository: Repository, prefixes: tuple[str, ...] = ("",)) -> list[str]:
        return self.client.list_tags(
            repository, pull=self._pull, at=self._endpoint(repository), prefixes=prefixes
        )

    def referrers(self, repository: Repository, digest: str) -> list[Descriptor] | None:
        return self.client.referrers(
            repository, digest, pull=self._pull, at=self._endpoint(repository)
        )

    # -- blobs ---------------------------------------------------------------------------

    def has_blob(self, repository: Repository, blob: Descriptor) -> bool:
        return self.client.blob_size(repository, blob.digest) is not None

    def get_blob(self, repository: Repository, digest: str) -> bytes:
        return self.client.get_blob(
            repository, digest, pull=self._pull, at=self._endpoint(repository)
        )

    def read_blob(
        self, repository: Repository, blob: Descriptor, start: ReadFrom | None = None
    ) -> AbstractContextManager[Iterator[bytes]]:
        return self.client.read_blob(
            repository, blob, pull=self._pull, at=self._endpoint(repository), start=start
        )

    def put_blob(
        self,
        repository: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None = None,
        session: str | None = None,
    ) -> None:
        self.client.put_blob(repository, blob, opener, progress, session)

    def mount_blob(self, repository: Repository, digest: str, holder: Repository) -> MountAnswer:
        return self.client.mount_blob(repository, digest, holder)
