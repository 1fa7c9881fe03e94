"""A large blob written into a layout so that a killed run goes on where it stopped (§17).

Its bytes go to a temporary file whose name is the blob's (``.imagesync-partial-<alg>-<hex>``
in the layout), held under an exclusive lock while written. A run that finds one hashes what
it holds (from disk, not the network), asks the source for the rest only (``Range``), checks
the digest across both, and renames the file to the blob's name only when it is whole and
right. A file whose bytes turn out not to be the blob is removed.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import IO

from imagesync.content.manifest import Descriptor
from imagesync.errors import DigestMismatch
from imagesync.stores.layout.tree import TEMPORARY_PREFIX, LayoutError
from imagesync.stores.store import BlobOpener, Progress, ReadFrom, resumed_at
from imagesync.stores.stream import new_hasher

# Blobs from this size on are written resumably (smaller ones are quicker sent again than
# hashed from disk): IMAGESYNC_RESUMABLE_BYTES sets it (tests).
RESUMABLE_BYTES = int(os.environ.get("IMAGESYNC_RESUMABLE_BYTES") or 16 * 1024 * 1024)
_READ = 1024 * 1024


def partial_path(directory: Path, digest: str) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    return directory / f"{TEMPORARY_PREFIX}partial-{algorithm}-{hex_digest}.tmp"


def resumable_write(
    directory: Path, final: Path, blob: Descriptor, opener: BlobOpener, progress: Progress | None
) -> bool:
    """Write ``blob`` through its partial file, going on from what it holds; False (nothing
    done) when another process holds that file."""
    path = partial_path(directory, blob.digest)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        raise LayoutError(f"cannot write {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "r+b") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise LayoutError(f"{path} is not a regular file", "remove it")
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        start = _held(handle, blob)
        if start.offset:
            resumed_at(progress, start.offset)
        try:
            _fill(handle, blob, opener, start, progress)
        except DigestMismatch:
            path.unlink(missing_ok=True)
            raise
        except OSError as error:
            raise LayoutError(f"cannot write {path}: {error.strerror}") from None
        os.replace(path, final)
    return True


def _held(handle: IO[bytes], blob: Descriptor) -> ReadFrom:
    """Where the partial file leaves off: its bytes hashed (one too long is begun again)."""
    size = os.fstat(handle.fileno()).st_size
    if size > blob.size:
        handle.truncate(0)
        size = 0
    hasher = new_hasher(blob.digest)
    handle.seek(0)
    read = 0
    while read < size:
        piece = handle.read(min(_READ, size - read))
        if not piece:
            break
        hasher.update(piece)
        read += len(piece)
    return ReadFrom(read, hasher)


def _fill(
    handle: IO[bytes],
    blob: Descriptor,
    opener: BlobOpener,
    start: ReadFrom,
    progress: Progress | None,
) -> None:
    handle.seek(start.offset)
    handle.truncate()
    if start.offset == blob.size:
        if f"{start.hasher.name}:{start.hasher.hexdigest()}" != blob.digest:
            raise DigestMismatch(f"the partial file of {blob.digest} does not hash to it")
    else:
        with opener(start if start.offset else None) as chunks:
            for chunk in chunks:
                handle.write(chunk)
                if progress is not None:
                    progress(len(chunk))
    handle.flush()
    os.fsync(handle.fileno())
