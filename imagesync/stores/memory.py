"""Manifests a run has read, kept for the rest of it: they are content-addressed, so a copy
read once answers every later look at the same digest without asking again."""

from __future__ import annotations

import threading
from collections.abc import Hashable

from imagesync.content.manifest import Manifest

# Plenty for tens of thousands of real manifests.
MANIFEST_MEMORY = 64 * 1024 * 1024


class ManifestMemory:
    """Manifests by (place, digest), the oldest going first past ``budget`` bytes (a run over
    many thousands of images must not hold all of them); thread-safe."""

    def __init__(self, budget: int = MANIFEST_MEMORY) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._kept: dict[tuple[Hashable, str], Manifest] = {}
        self._bytes = 0

    def get(self, place: Hashable, digest: str) -> Manifest | None:
        with self._lock:
            return self._kept.get((place, digest))

    def keep(self, place: Hashable, manifest: Manifest) -> None:
        with self._lock:
            key = (place, manifest.digest)
            if key in self._kept:
                return
            self._kept[key] = manifest
            self._bytes += len(manifest.raw)
            while self._bytes > self.budget:
                oldest = self._kept.pop(next(iter(self._kept)))
                self._bytes -= len(oldest.raw)
