"""What a run knows beside its stores: the bookkeeping that is no content.

A store answers questions about content, each from what the place holds now: which manifest a
tag holds, whether a blob is here, what refers to a digest; and it takes blobs, manifests and
mounts (:class:`imagesync.stores.store.Store`). What a run learns across those answers is not
the place's but the run's, and lives here, in one :class:`RunContext` made with the stores
(:func:`imagesync.stores.connection.open_stores`) and handed with them to planner and applier:

- where in the target this run has seen a blob, or put it: the repositories a mount can take
  it from (:class:`Holders`), and which repositories a mount can take from at all (those of
  the target's one place: its registry, its layout tree);
- which target repositories are new (a registry is asked once, so that the blobs of a new
  repository are not asked for one by one; a layout answers every look at once and needs no
  such shortcut);
- how many pulls a registry has left (Docker Hub says so in its answers);
- that the run is stopping: waits before retries end at once.

The last three come from the registry client, which learns them from the answers it gets
(:class:`RegistryRun`); a run without registries has none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from imagesync.reference import Repository
from imagesync.stores.holders import Holders

# Whether a mount can take a blob into the first repository from the second.
Mountable = Callable[[Repository, Repository], bool]


@dataclass(frozen=True)
class MissingRepository:
    """A target repository that does not exist, in a registry that creates none on push
    (ECR): nothing can be written to it until it is created. ``may_create``: the registries
    config lets imagesync create it (``create_repositories: true``); ``command``: what a
    person runs to create it; ``setting``: where ``create_repositories`` goes."""

    repository: Repository
    may_create: bool
    command: str
    setting: str

    @property
    def problem(self) -> str:
        return (
            f"target repository {self.repository} does not exist, and its registry creates "
            "none on push"
        )

    @property
    def hint(self) -> str:
        return f"create it ({self.command}), or set {self.setting} to let imagesync create it"


class RegistryRun(Protocol):
    """What the registry client of a run has learnt, or is told, that is no content."""

    @property
    def holders(self) -> Holders:
        """The repositories of each registry the client has seen holding a blob, or given
        it to (it notes them as its blob requests are answered)."""
        ...

    def is_new(self, repository: Repository) -> bool:
        """True when ``repository`` is known not to exist (it holds no blob); False when that
        is not known. Asked of the registry once per repository."""
        ...

    def pulls_left(self, registry: str) -> int | None:
        """How many pulls ``registry`` allows now, when it said."""
        ...

    def missing_repository(self, repository: Repository) -> MissingRepository | None:
        """``repository``, known not to exist (:meth:`is_new`), when its registry creates no
        repository on push; None otherwise."""
        ...

    def create_repository(self, repository: Repository) -> bool:
        """Create ``repository`` through its registry's API; False when it existed."""
        ...

    def stop(self) -> None:
        """Waits before retries end now."""
        ...


@dataclass(frozen=True)
class RunContext:
    """A run's bookkeeping: mount candidates, new repositories, pulls left, stopping.

    ``mountable``: which repositories a mount can take a blob from into a target repository.
    ``holders``: where this run has seen each blob of the target, or put it.
    ``registries``: the registry client's side of the run; None when no side is a registry.
    ``target_is_registry``: whether new target repositories are worth asking about.
    """

    mountable: Mountable
    holders: Holders = field(default_factory=Holders)
    registries: RegistryRun | None = None
    target_is_registry: bool = False

    # -- mounts --------------------------------------------------------------------------

    def can_mount(self, repository: Repository, holder: Repository) -> bool:
        """Whether a mount can take a blob from ``holder`` into ``repository`` (both are in
        the target's one place: the same registry, the same layout tree)."""
        return self.mountable(repository, holder)

    def holder(self, digest: str, near: Repository, *, given: bool = True) -> Repository | None:
        """A repository beside ``near`` and other than it that this run has seen holding the
        blob or (``given``) has put it into: one to mount it from."""
        return self.holders.holder(digest, near, given=given)

    def may_hold(self, repository: Repository, digest: str) -> None:
        """Note a repository whose manifests list the blob (a skipped image's): a place to
        try a mount from, though not a sign that the blob is there."""
        self.holders.add(repository, digest, given=False)

    def put(self, repository: Repository, digest: str) -> None:
        """This run has put the blob into ``repository`` (a copy, a mount)."""
        self.holders.add(repository, digest, given=True)

    # -- what registries have said ------------------------------------------------------

    def is_new(self, repository: Repository) -> bool:
        """Learn once whether target ``repository`` is new before its blobs are asked for one
        by one: True when it is known to hold no blob; False when that is not known (the blobs
        are asked for)."""
        if not self.target_is_registry or self.registries is None:
            return False
        return self.registries.is_new(repository)

    def missing_repository(self, repository: Repository) -> MissingRepository | None:
        """Target ``repository`` when it must be created before anything is written to it
        (it does not exist, and its registry creates none on push: ECR); else None."""
        if not self.is_new(repository):
            return None
        assert self.registries is not None
        return self.registries.missing_repository(repository)

    def create_repository(self, repository: Repository) -> bool:
        """Create target ``repository`` (a change of the plan); False when it existed."""
        if self.registries is None:
            raise RuntimeError("only a registry has repositories to create")
        return self.registries.create_repository(repository)

    def pulls_left(self, registry: str) -> int | None:
        """How many pulls ``registry`` allows now, when it said (Docker Hub does)."""
        return self.registries.pulls_left(registry) if self.registries is not None else None

    def stop(self) -> None:
        """The run is being stopped: waits before retries end now."""
        if self.registries is not None:
            self.registries.stop()
