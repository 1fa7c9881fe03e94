"""A tree of OCI image layouts as a store: ``--target oci:DIR`` and ``--source-layout DIR``.

The same operations as a registry's, on files: a tag is an ``index.json`` entry, a manifest and
a blob are files under ``blobs/``, what refers to a manifest is found by its ``subject`` among
the entries (a layout has no referrers API, so a target layout needs no tag-schema index). The
rules do not change: a manifest read is checked against its digest, a blob's bytes as they
pass; a blob is renamed into place only once whole and right; ``index.json`` is replaced at
once, and last, so an interrupted apply leaves no tag on an incomplete image; a tag is written
only where it is absent (or holds what the writer looked at), under a lock that other threads
and processes writing the layout take too.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

from imagesync.content import mediatypes
from imagesync.content.manifest import MAX_MANIFEST_BYTES, Descriptor, Manifest
from imagesync.content.referrers import described_as_referrer, digest_tag
from imagesync.errors import DigestMismatch, NotFound
from imagesync.reference import Reference, Repository, is_valid_digest
from imagesync.stores.layout import blobs
from imagesync.stores.layout.index import MAX_INDEX_BYTES, Index, Subjects
from imagesync.stores.layout.tree import (
    BLOBS,
    INDEX_FILE,
    LayoutTree,
    sync_directory,
)
from imagesync.stores.memory import ManifestMemory
from imagesync.stores.store import (
    MAX_CONFIG_BYTES,
    BlobOpener,
    Located,
    MountAnswer,
    Progress,
    ReadFrom,
    TagTaken,
)


class LayoutStore:
    """The layouts of one tree; thread-safe."""

    def __init__(self, tree: LayoutTree) -> None:
        self.tree = tree
        self.manifests = ManifestMemory()
        self.subjects = Subjects()

    @property
    def where(self) -> str:
        return str(self.tree)

    # -- manifests -----------------------------------------------------------------------

    def locate(self, ref: Reference) -> Located | None:
        descriptor = self.head_manifest(ref)
        return Located(descriptor, self) if descriptor is not None else None

    def head_manifest(self, ref: Reference) -> Descriptor | None:
        directory = self.tree.directory(ref.repository)
        if ref.digest is None:
            return self._index(directory).tagged(ref.tag or "latest", str(directory / INDEX_FILE))
        manifest = self.find_manifest(ref)
        return manifest.descriptor if manifest is not None else None

    def get_manifest(self, ref: Reference) -> Manifest:
        manifest = self.find_manifest(ref)
        if manifest is None:
            raise NotFound(f"{ref} is not in the layout")
        return manifest

    def known_manifest(self, ref: Reference) -> Manifest | None:
        return self.find_manifest(ref)  # a file: reading it is free

    def find_manifest(self, ref: Reference) -> Manifest | None:
        directory = self.tree.directory(ref.repository)
        index = self._index(directory)
        digest = ref.digest
        if digest is None:
            tagged = index.tagged(ref.tag or "latest", str(directory / INDEX_FILE))
            if tagged is None:
                return None
            digest = tagged.digest
        listed = index.listed(digest)
        return self._manifest(directory, digest, listed.media_type if listed else None, str(ref))

    def put_manifest(
        self,
        repository: Repository,
        reference: str,
        manifest: Manifest,
        *,
        replacing: str | None = None,
    ) -> None:
        if is_valid_digest(reference) and reference != manifest.digest:
            raise DigestMismatch(f"{manifest.digest} cannot be stored as {reference}")
        directory = self.tree.directory(repository)
        self.tree.make_layout(directory)
        blobs.write_bytes(self.tree, directory, manifest.digest, manifest.raw)
        self.manifests.keep(directory, manifest)
        if reference == manifest.digest:
            # By digest, a manifest is reachable from what lists it; one with a subject (a
            # referrer) is listed itself, which is how it is found again.
            if manifest.subject is not None:
                listed = described_as_referrer(manifest)
                self._update(directory, lambda index: index.with_untagged(listed))
            return
        descriptor = manifest.descriptor

        def tag(index: Index) -> Index:
            held = index.tagged(reference, str(directory / INDEX_FILE))
            if held is None or held.digest == replacing:
                return index.with_tag(reference, descriptor)
            if held.digest == manifest.digest:
                return index
            raise TagTaken(f"{repository}:{reference} holds {held.digest} now", held.digest)

        self._update(directory, tag)

    # -- tags and referrers --------------------------------------------------------------

    def list_tags(self, repository: Repository, prefixes: tuple[str, ...] = ("",)) -> list[str]:
        tags = self._index(self.tree.directory(repository)).tags()
        return [tag for tag in tags if tag.startswith(prefixes)]

    def referrers(self, repository: Repository, digest: str) -> list[Descriptor]:
        """The entries whose manifest has ``digest`` as its ``subject`` (how this store keeps
        referrers), and what a tag-schema index ``sha256-<hex>`` lists (how a layout copied
        from a registry without the referrers API may hold them). Each manifest of the
        layout is read once a run, whatever the number of subjects (:class:`Subjects`)."""
        directory = self.tree.directory(repository)
        index = self._index(directory)
        where = str(directory)
        found = {
            d.digest: d
            for d in self.subjects.referrers(
                directory,
                index,
                digest,
                lambda listed: self._scanned(directory, listed),
                lambda listed, raw: self._parsed(directory, listed, raw),
            )
        }
        schema = index.tagged(digest_tag(digest), str(directory / INDEX_FILE))
        if schema is not None and schema.media_type == mediatypes.OCI_INDEX:
            tagged = self._manifest(directory, schema.digest, schema.media_type, where)
            for child in tagged.children if tagged is not None else ():
                found.setdefault(child.digest, child)
        return list(found.values())

    # -- blobs ---------------------------------------------------------------------------

    def has_blob(self, repository: Repository, blob: Descriptor) -> bool:
        return blobs.has_blob(self.tree, self.tree.directory(repository), blob)

    def get_blob(self, repository: Repository, digest: str) -> bytes:
        directory = self.tree.directory(repository)
        data = blobs.read_small(self.tree, directory, digest, MAX_CONFIG_BYTES)
        if data is None:
            raise NotFound(f"{repository} lacks blob {digest}")
        return data

    @contextlib.contextmanager
    def read_blob(
        self, repository: Repository, blob: Descriptor, start: ReadFrom | None = None
    ) -> Iterator[Iterator[bytes]]:
        directory = self.tree.directory(repository)
        with blobs.read_stream(self.tree, directory, blob, start) as chunks:
            yield chunks

    def put_blob(
        self,
        repository: Repository,
        blob: Descriptor,
        opener: BlobOpener,
        progress: Progress | None = None,
        session: str | None = None,
    ) -> None:
        directory = self.tree.directory(repository)
        self.tree.make_layout(directory)
        blobs.write(self.tree, directory, blob, opener, progress)

    def mount_blob(self, repository: Repository, digest: str, holder: Repository) -> MountAnswer:
        if not (self.tree.contains(repository) and self.tree.contains(holder)):
            return MountAnswer(mounted=False)
        directory = self.tree.directory(repository)
        self.tree.make_layout(directory)
        if not blobs.link(self.tree, directory, digest, self.tree.directory(holder)):
            return MountAnswer(mounted=False)
        return MountAnswer(mounted=True)

    # -- plumbing ------------------------------------------------------------------------

    def _index(self, directory: Path) -> Index:
        """The layout's index as it is now (another writer may have changed it), read and
        parsed again only when the file has changed (:meth:`LayoutTree.read_parsed`); empty
        for a directory that is no layout (yet)."""
        if not self.tree.is_layout(directory):
            return Index.empty()
        path = directory / INDEX_FILE
        index = self.tree.read_parsed(path, MAX_INDEX_BYTES, _index_parser(str(path)))
        return Index.empty() if index is None else index

    def _update(self, directory: Path, change: Callable[[Index], Index]) -> None:
        """Change the layout's ``index.json`` under its lock, once the names of the blobs it
        will point at are synced (so that a power cut cannot keep the one without the other)."""
        sync_directory(directory / BLOBS / "sha256")
        with self.tree.locked(directory):
            before = self._index(directory)
            after = change(before)
            if after is not before:
                self.tree.replace(directory, INDEX_FILE, after.to_bytes())

    def _manifest(
        self, directory: Path, digest: str, media_type: str | None, where: str
    ) -> Manifest | None:
        known = self.manifests.get(directory, digest)
        if known is not None:
            return known
        raw = blobs.read_small(self.tree, directory, digest, MAX_MANIFEST_BYTES)
        if raw is None:
            return None
        manifest = Manifest.parse(raw, media_type or None, where)
        self.manifests.keep(directory, manifest)
        return manifest

    def _scanned(self, directory: Path, listed: Descriptor) -> bytes | None:
        """A listed manifest's bytes, read (and checked) to learn its subject."""
        known = self.manifests.get(directory, listed.digest)
        if known is not None:
            return known.raw
        return blobs.read_small(self.tree, directory, listed.digest, MAX_MANIFEST_BYTES)

    def _parsed(self, directory: Path, listed: Descriptor, raw: bytes) -> Manifest:
        """A manifest that names a subject, kept for the rest of the run (it is about to be
        copied); the thousands of others a layout may list are not, lest they push out of
        memory the manifests that matter."""
        manifest = Manifest.parse(raw, listed.media_type or None, str(directory))
        self.manifests.keep(directory, manifest)
        return manifest


@functools.lru_cache(maxsize=1024)
def _index_parser(where: str) -> Callable[[bytes], Index]:
    """The parser of one ``index.json``: the same object each time (it keys the cache)."""
    return functools.partial(Index.parse, where=where)
