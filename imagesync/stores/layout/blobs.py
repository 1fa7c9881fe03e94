"""A layout's blobs: ``blobs/<alg>/<hex>``, content-addressed files.

A blob counts as present only when its file has its size and hashes to its name
(:func:`has_blob`). A blob
comes in through a temporary file in its layout, every byte counted and hashed on the
way (the stream it is read from checks them, :func:`~imagesync.stores.stream.verified`), synced,
and only then renamed to its name: a blob file is whole and right, or it is not there. Going
out, a blob's bytes are checked the same way, so a damaged file is an error, never a copy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

from imagesync.content.manifest import Descriptor
from imagesync.errors import DigestMismatch
from imagesync.stores.layout.partial import RESUMABLE_BYTES, resumable_write
from imagesync.stores.layout.tree import (
    BLOBS,
    LayoutError,
    LayoutTree,
    install,
    temporary_file,
)
from imagesync.stores.store import BlobOpener, BlobStream, Progress, ReadFrom
from imagesync.stores.stream import from_start, verified

CHUNK_SIZE = 1024 * 1024


def blob_path(directory: Path, digest: str) -> Path:
    algorithm, _, hex_digest = digest.partition(":")
    return directory / BLOBS / algorithm / hex_digest


def blob_size(tree: LayoutTree, directory: Path, digest: str) -> int | None:
    """The size of the blob ``digest`` of the layout ``directory``; None when it is absent,
    and also when the file there does not hash to its name: a damaged blob is one to write
    again (:func:`write` puts the new one over it at once), never one to count as present.
    LayoutError when something else than a regular file has its name.

    Its bytes are hashed only here, where the blob would be counted, and once per run for
    each file (:meth:`LayoutTree.hashes_to`); a blob this run wrote is not read again.
    """
    path = blob_path(directory, digest)
    with tree.open_file(path) as handle:
        if handle is None or not tree.hashes_to(handle, digest):
            return None
        return os.fstat(handle.fileno()).st_size


def has_blob(tree: LayoutTree, directory: Path, blob: Descriptor) -> bool:
    """Whether the layout ``directory`` holds ``blob`` whole: a regular file of its size (a
    look that reads nothing) whose bytes hash to its name (read once per run, and only for a
    file that has the size). A damaged file counts as absent, to be written over."""
    path = blob_path(directory, blob.digest)
    with tree.open_file(path) as handle:
        if handle is None or os.fstat(handle.fileno()).st_size != blob.size:
            return False
        return tree.hashes_to(handle, blob.digest)


def read_small(tree: LayoutTree, directory: Path, digest: str, limit: int) -> bytes | None:
    """A small blob (a manifest, a config) read whole and checked; None when it is absent."""
    path = blob_path(directory, digest)
    data = tree.read(path, limit)
    if data is None:
        return None
    try:
        for _ in verified([data], Descriptor("", digest, len(data))):
            pass
    except DigestMismatch:
        raise _damaged(path, digest) from None
    return data


@contextlib.contextmanager
def read_stream(
    tree: LayoutTree, directory: Path, blob: Descriptor, start: ReadFrom | None = None
) -> Iterator[Iterator[bytes]]:
    """The blob's bytes in chunks, each checked before it is handed over; from ``start``."""
    path = blob_path(directory, blob.digest)
    with tree.open_file(path) as handle:
        if handle is None:
            raise LayoutError(f"{directory} lacks blob {blob.digest}", "the layout is incomplete")
        size = os.fstat(handle.fileno()).st_size
        if size != blob.size:
            raise LayoutError(
                f"{path} is {size} bytes, the manifest says {blob.size}: the layout is damaged",
                "export the image again",
            )

        def chunks() -> Iterator[bytes]:
            pieces = iter(lambda: handle.read(CHUNK_SIZE), b"")
            try:
                if start is not None and start.offset and start.hasher is not None:
                    handle.seek(start.offset)
                    yield from verified(pieces, blob, start)
                else:
                    yield from from_start(pieces, blob, start)
            except DigestMismatch:
                raise _damaged(path, blob.digest) from None

        yield chunks()


def write(
    tree: LayoutTree,
    directory: Path,
    blob: Descriptor,
    opener: BlobOpener,
    progress: Progress | None = None,
) -> None:
    """Take in the blob that ``opener`` streams: into a temporary file, synced, then renamed to
    its name once the stream has ended well (it raises before its last chunk when the bytes are
    not the blob)."""
    final = blob_path(directory, blob.digest)
    tree.make_directory(final.parent)
    if blob.size < RESUMABLE_BYTES or not resumable_write(directory, final, blob, opener, progress):
        with opener() as chunks:
            install(directory, final, _counted(chunks, progress))
    tree.hashed(final, blob.digest)  # ``verified`` checked every byte on its way in


def _counted(chunks: Iterable[bytes], progress: Progress | None) -> Iterator[bytes]:
    for chunk in chunks:
        if progress:
            progress(len(chunk))
        yield chunk


def write_bytes(tree: LayoutTree, directory: Path, digest: str, data: bytes) -> None:
    """Store ``data`` (a manifest) as blob ``digest``, the same way as a streamed blob."""
    blob = Descriptor("", digest, len(data))
    write(tree, directory, blob, _bytes_opener(data, blob))


def _bytes_opener(data: bytes, blob: Descriptor) -> BlobOpener:
    def opener(start: ReadFrom | None = None) -> BlobStream:
        return contextlib.nullcontext(from_start([data], blob, start))

    return opener


def link(tree: LayoutTree, directory: Path, digest: str, holder: Path) -> bool:
    """Give the layout ``directory`` the blob ``digest`` of the layout ``holder`` (same tree)
    without reading it: a hard link, or where the file system has none (exFAT, FAT), a copy
    within the tree, checked like any other. False when ``holder`` lacks the blob."""
    source = blob_path(holder, digest)
    size = blob_size(tree, holder, digest)
    if size is None:
        return False
    final = blob_path(directory, digest)
    tree.make_directory(final.parent)
    real = tree.inside(source)
    assert real is not None
    try:
        _link_over(real, directory, final)
    except OSError:
        described = Descriptor("application/octet-stream", digest, size)
        write(tree, directory, described, partial(read_stream, tree, holder, described))
        return True
    tree.hashed(final, digest)  # the holder's file, hashed by blob_size above
    return True


def _link_over(real: Path, directory: Path, final: Path) -> None:
    """A hard link to ``real`` at ``final``, made under a temporary name and renamed over
    what has that name (a damaged blob is replaced at once, as :func:`install` does)."""
    handle, temporary = temporary_file(directory)
    handle.close()
    try:
        os.unlink(temporary)  # only its unique name is wanted
        os.link(real, temporary)
        os.replace(temporary, final)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _damaged(path: Path, digest: str) -> LayoutError:
    return LayoutError(
        f"{path} does not hash to {digest}: the layout is damaged",
        "export the image again",
    )
