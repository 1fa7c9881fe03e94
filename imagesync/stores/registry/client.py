"""The registry client: one facade over the verbs, spoken in typed values.

Split by verb like regclient's ``scheme/reg``: manifest.py, tag.py, referrers.py, blob.py
(presence, reads, mounts) and upload.py, each over one shared core (core.py: the transport
and the endpoints of reads). Pulls go through the registry's mirrors first (registries
config), pushes go to the registry itself. Every byte read is checked against the digest it
was asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from imagesync.content.manifest import Descriptor, Manifest
from imagesync.errors import RegistryError
from imagesync.reference import Reference, Repository
from imagesync.stores.holders import Holders
from imagesync.stores.registry.blob import Blobs
from imagesync.stores.registry.core import Core, Endpoint
from imagesync.stores.registry.manifest import Manifests
from imagesync.stores.registry.referrers import Referrers
from imagesync.stores.registry.tag import list_tags
from imagesync.stores.registry.transport import Transport
from imagesync.stores.registry.upload import Uploads
from imagesync.stores.run import MissingRepository
from imagesync.stores.store import BlobOpener, MountAnswer, Progress, ReadFrom

__all__ = ["Endpoint", "RegistryClient"]

# Refusals of what is written (its type, its name), not of the request: a setting of the
# registry decides them.
_CONTENT_REFUSALS = frozenset({"MANIFEST_INVALID", "NAME_INVALID", "UNSUPPORTED"})
_REFUSED_HINT = (
    "the registry refuses this content or repository name; some registries take OCI "
    "artifacts or nested names only when a setting allows them (kind: in the registries "
    "config names it for known kinds)"
)


class RegistryClient:
    """What a run asks of registries. One serves a whole run: its connections, tokens and
    what it has learnt (so that apply does not ask again what plan just asked) are shared.
    Thread-safe."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._core = Core(transport)
        self._manifests = Manifests(self._core)
        self.manifests = self._manifests.memory
        self._referrers = Referrers(self._core)
        # The repositories of a registry seen holding a blob, or given it: mount sources.
        self.holders = Holders()
        self._blobs = Blobs(self._core, self.holders)
        self._uploads = Uploads(self._core, self._blobs)

    # -- the run ---------------------------------------------------------------------------

    def pulls_left(self, registry: str) -> int | None:
        """The pull allowance ``registry`` last said is left (Docker Hub's
        ``ratelimit-remaining``); None when it never said."""
        return self.transport.rate_limit_remaining.get(registry)

    def stop(self) -> None:
        """The run is being stopped: waits before retries end at once."""
        self.transport.stopping.set()

    def missing_repository(self, repository: Repository) -> MissingRepository | None:
        """``repository`` (known not to exist) when its registry creates none on push; what
        creates it, and whether the registries config lets imagesync do so."""
        config = self.transport.config
        registry = repository.registry
        if config.capabilities(registry).creates_repositories:
            return None
        from imagesync.stores.registry.ecr import EcrRegistry

        return MissingRepository(
            repository,
            may_create=config.settings(registry).create_repositories,
            command=EcrRegistry.of(registry).create_command(repository.path),
            setting=f"create_repositories: true under registries.{registry} in the registries "
            "config",
        )

    def create_repository(self, repository: Repository) -> bool:
        """Create ``repository`` through its registry's API (ECR's CreateRepository); False
        when it existed already."""
        registry = repository.registry
        if not self.transport.config.capabilities(registry).aws_ecr:
            raise RegistryError(
                f"imagesync cannot create repository {repository}: {registry} is no registry "
                "whose repositories it knows how to create (kind: ecr)",
                "re-run plan; do not edit plan files by hand",
            )
        from imagesync.stores.registry import ecr

        return ecr.create_repository(ecr.EcrRegistry.of(registry), repository.path)

    # -- manifests -------------------------------------------------------------------------

    def head_manifest(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> Descriptor | None:
        """Digest, media type and size of what ``ref`` points at; None if it does not exist.

        HEAD first: registries (Docker Hub) do not count HEADs against pull limits. ``at``
        asks that endpoint only (see :meth:`locate`).
        """
        located = self._manifests.locate(ref, pull=pull, at=at)
        return located[0] if located else None

    def locate(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> tuple[Descriptor, Endpoint] | None:
        """Like :meth:`head_manifest`, also saying which endpoint (a mirror or the registry
        itself) answered; None if none has it."""
        return self._manifests.locate(ref, pull=pull, at=at)

    def get_manifest(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> Manifest:
        """The exact bytes of a manifest, checked against the digest asked for and announced."""
        manifest = self._manifests.get(ref, pull=pull, missing_ok=False, at=at)
        assert manifest is not None
        return manifest

    def find_manifest(
        self, ref: Reference, *, pull: bool = True, at: Endpoint | None = None
    ) -> Manifest | None:
        """Like :meth:`get_manifest`, but None when it does not exist.

        For a tag in the target, one GET answers both "is it there" and "what is it", where a
        HEAD would need a GET after it.
        """
        return self._manifests.get(ref, pull=pull, missing_ok=True, at=at)

    def put_manifest(self, repository: Repository, reference: str, manifest: Manifest) -> str:
        """Upload the manifest's exact bytes; ``reference`` is a tag or the digest."""
        with self._refusals(repository):
            return self._manifests.put(repository, reference, manifest)

    # -- tags and referrers ----------------------------------------------------------------

    def list_tags(
        self,
        repository: Repository,
        *,
        pull: bool = True,
        at: Endpoint | None = None,
        prefixes: tuple[str, ...] = ("",),
    ) -> list[str]:
        """The tags of a repository that start with one of ``prefixes`` (tag.py)."""
        return list_tags(self._core, repository, pull=pull, at=at, prefixes=prefixes)

    def referrers(
        self,
        repository: Repository,
        digest: str,
        *,
        pull: bool = True,
        artifact_type: str | None = None,
        at: Endpoint | None = None,
    ) -> list[Descriptor] | None:
        """Descriptors from the OCI referrers API; None when the registry does not offer it."""
        return self._referrers.find(
            repository, digest, pull=pull, artifact_type=artifact_type, at=at
        )

    # -- blobs -----------------------------------------------------------------------------

    def blob_size(self, repository: Repository, digest: str) -> int | None:
        """Size of a blob in the target registry, or None when it is not there."""
        return self._blobs.size(repository, digest)

    def is_new(self, repository: Repository) -> bool:
        """Whether ``repository`` is known not to exist (so it holds no blob); asked once."""
        return self._blobs.is_new(repository)

    def get_blob(
        self, repository: Repository, digest: str, *, pull: bool = True, at: Endpoint | None = None
    ) -> bytes:
        """A small blob (an image config), read whole and checked against its digest."""
        return self._blobs.get(repository, digest, pull=pull, at=at)

    def mount_blob(self, target: Repository, digest: str, source: Repository) -> MountAnswer:
        """Link a blob from another repository of the registry into ``target``, or the upload
        session the registry opened instead."""
        return self._blobs.mount(target, digest, source)

    def read_blob(
        self,
        repository: Repository,
        blob: Descriptor,
        *,
        pull: bool = True,
        at: Endpoint | None = None,
        start: ReadFrom | None = None,
    ) -> AbstractContextManager[Iterator[bytes]]:
        """The blob's bytes as they arrive (from ``start``), checked as they pass."""
        return self._blobs.read(repository, blob, pull=pull, at=at, start=start)

    def put_blob(
        self,
        target: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None = None,
        session: str | None = None,
    ) -> None:
        """Stream one blob into ``target`` from ``opener`` (another store's read_blob)."""
        with self._refusals(target):
            self._uploads.put(target, blob, opener, progress, session)

    def start_upload(self, target: Repository) -> str:
        """Open an upload session in ``target``; its location."""
        with self._refusals(target):
            return self._uploads.start(target)

    @contextmanager
    def _refusals(self, repository: Repository) -> Iterator[None]:
        """A write the registry refuses for its content or its name (``415``,
        ``MANIFEST_INVALID``, ``NAME_INVALID``) fails that image alone (the applier's per-image
        error), its hint naming the registry's setting where its kind says one (kinds.py)."""
        try:
            yield
        except RegistryError as error:
            if error.status == 415 or error.code in _CONTENT_REFUSALS:
                config = self.transport.config
                setting = config.capabilities(repository.registry).setting_for(
                    error.status, error.code
                )
                error.hint = setting or _REFUSED_HINT
            raise
