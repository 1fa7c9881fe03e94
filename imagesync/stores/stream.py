"""A blob's bytes as they pass from one store to another: checked against its descriptor.

Every store hands out a blob through :func:`verified`, so whatever receives it — an upload to a
registry, a file in a layout — gets each chunk only after it is counted and hashed, and the last
one only when the whole blob hashes to its digest: a wrong blob never completes anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from imagesync.content.manifest import Descriptor
from imagesync.errors import DigestMismatch


def verified(chunks: Iterable[bytes], blob: Descriptor) -> Iterator[bytes]:
    """``chunks`` as they come, each handed over once checked; DigestMismatch when they run
    longer or shorter than ``blob.size`` or do not hash to ``blob.digest``."""
    algorithm, _, _ = blob.digest.partition(":")
    hasher = hashlib.new(algorithm if algorithm in ("sha256", "sha512") else "sha256")
    received = 0
    for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > blob.size:
            raise DigestMismatch(f"blob {blob.digest} is longer than its {blob.size} bytes")
        hasher.update(chunk)
        if received == blob.size:
            _check(hasher, blob)
        yield chunk
    if received != blob.size:
        raise DigestMismatch(f"blob {blob.digest} ended after {received} of {blob.size} bytes")
    if received == 0:
        _check(hasher, blob)


def _check(hasher: hashlib._Hash, blob: Descriptor) -> None:
    actual = f"{hasher.name}:{hasher.hexdigest()}"
    if actual != blob.digest:
        raise DigestMismatch(f"blob {blob.digest} arrived with digest {actual}")
