"""Where in a store this run has seen a blob: the repositories a mount can take it from."""

from __future__ import annotations

import threading

from imagesync.reference import Repository

# A few suffice: any one of them serves a mount.
KEPT = 4


class Holders:
    """Per digest and place (a registry, a layout tree), the repositories this run has seen
    holding the blob, or has given it to; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], list[tuple[Repository, bool]]] = {}

    def add(self, repository: Repository, digest: str, *, given: bool) -> None:
        """``repository`` holds the blob (``given``: this run gave it), or its manifests
        list it (not ``given``: a place to try)."""
        with self._lock:
            known = self._known.setdefault((repository.endpoint, digest), [])
            if len(known) < KEPT and all(r != repository for r, _ in known):
                known.append((repository, given))

    def holder(self, digest: str, near: Repository, *, given: bool = True) -> Repository | None:
        """A repository in the place of ``near``, other than ``near``, known to hold the blob
        (``given``: also one this run gave it to); None when none is known."""
        with self._lock:
            known = self._known.get((near.endpoint, digest), ())
            return next((r for r, by_us in known if r != near and (given or not by_us)), None)
