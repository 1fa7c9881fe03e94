"""A blob's bytes as they pass from one store to another: checked against its descriptor.

Every store hands out a blob through :func:`verified`, so whatever receives it — an upload to a
registry, a file in a layout — gets each chunk only after it is counted and hashed, and the last
one only when the whole blob hashes to its digest: a wrong blob never completes anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from imagesync.content.manifest import Descriptor
from imagesync.errors import DigestMismatch
from imagesync.stores.store import ReadFrom


def new_hasher(digest: str) -> Any:
    """A fresh hash of ``digest``'s algorithm."""
    algorithm, _, _ = digest.partition(":")
    return hashlib.new(algorithm if algorithm in ("sha256", "sha512") else "sha256")


def verified(
    chunks: Iterable[bytes], blob: Descriptor, start: ReadFrom | None = None
) -> Iterator[bytes]:
    """``chunks`` as they come, each handed over once checked; DigestMismatch when they run
    longer or shorter than ``blob.size`` or do not hash to ``blob.digest``.

    ``start``: ``chunks`` begin at ``start.offset``, the bytes before it hashed already into
    ``start.hasher`` (the check spans the pieces of a resumed transfer)."""
    if start is not None and start.offset:
        hasher, received = start.hasher, start.offset
    else:
        hasher, received = new_hasher(blob.digest), 0
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


def skipped(chunks: Iterable[bytes], count: int) -> Iterator[bytes]:
    """``chunks`` without their first ``count`` bytes (read and checked, not handed over)."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        if count:
            chunk, count = chunk[count:], 0
        yield chunk


def from_start(read: Iterable[bytes], blob: Descriptor, start: ReadFrom | None) -> Iterator[bytes]:
    """A blob read from its first byte (``read``: its raw chunks), handed over from
    ``start.offset`` on: the bytes before it hashed again, and passed over."""
    if start is None or not start.offset:
        return verified(read, blob)
    return skipped(verified(read, blob), start.offset)


def _check(hasher: hashlib._Hash, blob: Descriptor) -> None:
    actual = f"{hasher.name}:{hasher.hexdigest()}"
    if actual != blob.digest:
        raise DigestMismatch(f"blob {blob.digest} arrived with digest {actual}")
