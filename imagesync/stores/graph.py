"""An image as a whole: its tagged manifest, every manifest below it, and every blob."""

from __future__ import annotations

from dataclasses import dataclass

from imagesync.content.manifest import Descriptor, Manifest
from imagesync.errors import ImagesyncError, NotFound
from imagesync.reference import Reference
from imagesync.stores.store import Store

# Indexes of indexes exist (rarely); deeper nesting is a loop or an attack.
MAX_DEPTH = 4


class IncompleteImage(ImagesyncError):
    """The source lists content it does not have."""


@dataclass(frozen=True)
class Image:
    """``manifests`` lists the root's descendants with children before parents, so pushing
    them in this order never leaves a manifest pointing at something the target lacks."""

    root: Manifest
    manifests: tuple[Manifest, ...]
    blobs: tuple[Descriptor, ...]


def fetch_image(store: Store, source: Reference, root: Manifest | None = None) -> Image:
    """Read every manifest of the image at ``source`` (by digest) from ``store`` and list its
    blobs."""
    if root is None:
        root = store.get_manifest(source)
    manifests: list[Manifest] = []
    blobs: dict[str, Descriptor] = {}
    seen: set[str] = set()

    def walk(manifest: Manifest, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise IncompleteImage(f"index {root.digest} nests more than {MAX_DEPTH} levels")
        for blob in manifest.blobs:
            blobs.setdefault(blob.digest, blob)
        for child in manifest.children:
            if child.digest in seen:
                continue
            seen.add(child.digest)
            try:
                child_manifest = store.get_manifest(source.with_digest(child.digest))
            except NotFound:
                raise IncompleteImage(
                    f"index {manifest.digest} lists {child.digest}, which {source.repository} "
                    "lacks",
                    "the source image is incomplete; pick another digest",
                ) from None
            walk(child_manifest, depth + 1)
            manifests.append(child_manifest)

    walk(root, 0)
    return Image(root, tuple(manifests), tuple(blobs.values()))
