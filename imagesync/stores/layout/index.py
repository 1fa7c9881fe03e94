"""A layout's ``index.json``: its tags, and the manifests it holds at the top.

A tag is an entry annotated ``org.opencontainers.image.ref.name`` with the tag, as skopeo
writes it; a referrer is an entry without one (a layout has no referrers API, so what refers to
a manifest is found by its ``subject``, among these entries). The file is read as a registry's
answer is: to a limit, as JSON of the right shape, or not at all. It is written by changing
only the entries a write concerns — every other field and entry stays as it was — and replaced
whole, at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from imagesync.content import mediatypes
from imagesync.content.documents import json_object
from imagesync.content.manifest import BadManifest, Descriptor, Manifest
from imagesync.content.referrers import described_as_referrer
from imagesync.inputfile import limit_text
from imagesync.redact import excerpt
from imagesync.stores.layout.tree import INDEX_FILE, LayoutError

REF_NAME = "org.opencontainers.image.ref.name"
# A layout with a few thousand tags is a big one; a larger index.json is not one to read.
MAX_INDEX_BYTES = 16 * 1024 * 1024
# Finding referrers in a layout reads every manifest its index lists (a layout has no
# referrers API): bounded as a registry's referrers pages are (``MAX_REFERRERS_PAGES``), by
# the manifests read and their bytes. A layout beyond either is refused, not half searched.
MAX_SCANNED_ENTRIES = 10_000
MAX_SCANNED_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One entry of ``index.json``: what it says (``raw``, kept as written) and its
    descriptor."""

    raw: dict[str, Any]
    descriptor: Descriptor

    @property
    def tag(self) -> str | None:
        return dict(self.descriptor.annotations).get(REF_NAME)


@dataclass(frozen=True)
class Index:
    """The parsed ``index.json`` of one layout (empty when it has none)."""

    document: dict[str, Any]
    entries: tuple[Entry, ...]

    @classmethod
    def empty(cls) -> Index:
        return cls({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}, ())

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Index:
        document = json_object(raw, where, LayoutError)
        listed = document.get("manifests")
        if listed is None:
            listed = []
        if not isinstance(listed, list):
            raise LayoutError(f"{where}: 'manifests' is not a list", "check the layout tree")
        try:
            entries = tuple(Entry(e, Descriptor.from_json(e, where)) for e in listed)
        except BadManifest as error:
            raise LayoutError(error.message, "check the layout tree") from None
        return cls(document, entries)

    @cached_property
    def _by_tag(self) -> dict[str, list[Descriptor]]:
        # Made once for each index read: a layout of thousands of entries is looked up for
        # every tag and digest of a run.
        found: dict[str, list[Descriptor]] = {}
        for entry in self.entries:
            if (tag := entry.tag) is not None:
                found.setdefault(tag, []).append(entry.descriptor)
        return found

    @cached_property
    def _by_digest(self) -> dict[str, Descriptor]:
        found: dict[str, Descriptor] = {}
        for entry in self.entries:
            found.setdefault(entry.descriptor.digest, entry.descriptor)
        return found

    def tagged(self, tag: str, where: str) -> Descriptor | None:
        """The descriptor tagged ``tag``; LayoutError when two entries claim it."""
        found = self._by_tag.get(tag, [])
        if len(found) > 1:
            raise LayoutError(
                f"{where} names tag {excerpt(tag, 128)} {len(found)} times",
                "check the layout tree: a tag names one manifest",
            )
        return found[0] if found else None

    def listed(self, digest: str) -> Descriptor | None:
        """An entry's descriptor for ``digest``, tagged or not."""
        return self._by_digest.get(digest)

    def tags(self) -> list[str]:
        return [tag for e in self.entries if (tag := e.tag) is not None]

    def with_tag(self, tag: str, descriptor: Descriptor) -> Index:
        """This index with ``tag`` naming ``descriptor`` (in place of what it named)."""
        entry = descriptor.to_json()
        entry["annotations"] = {**entry.get("annotations", {}), REF_NAME: tag}
        kept = [e.raw for e in self.entries if e.tag != tag]
        return self._with([*kept, entry])

    def with_untagged(self, descriptor: Descriptor) -> Index:
        """This index listing ``descriptor`` (unless it lists that digest already), untagged:
        a referrer's own annotations never name a tag here, whatever they say."""
        if self.listed(descriptor.digest) is not None:
            return self
        entry = descriptor.to_json()
        annotations = {k: v for k, v in entry.pop("annotations", {}).items() if k != REF_NAME}
        if annotations:
            entry["annotations"] = annotations
        return self._with([*(e.raw for e in self.entries), entry])

    def to_bytes(self) -> bytes:
        return json.dumps(self.document, separators=(",", ":"), ensure_ascii=False).encode()

    def _with(self, listed: list[dict[str, Any]]) -> Index:
        document = {"schemaVersion": 2, **self.document, "manifests": listed}
        entries = tuple(Entry(raw, Descriptor.from_json(raw, INDEX_FILE)) for raw in listed)
        return Index(document, entries)


# What a manifest read for referrer discovery says: the digest of its subject and how it is
# listed as a referrer, or None when it refers to nothing.
Referring = tuple[str, Descriptor] | None


class Subjects:
    """What refers to what in each layout of a tree: every manifest its index lists read at
    most once a run, and a map subject → referrers made once for each index read (linear in
    the layout's size, however many subjects are asked about); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # A manifest's subject never changes (it is content-addressed): kept for the run,
        # whatever index lists it next.
        self._of: dict[tuple[Path, str], Referring] = {}
        self._maps: dict[Path, tuple[Index, dict[str, list[Descriptor]]]] = {}

    def referrers(
        self,
        directory: Path,
        index: Index,
        digest: str,
        read: Callable[[Descriptor], bytes | None],
        parse: Callable[[Descriptor, bytes], Manifest],
    ) -> list[Descriptor]:
        """The entries of ``index`` (the layout ``directory``'s) whose manifest has
        ``digest`` as its subject: ``read`` gives a manifest's bytes, checked against its
        digest (None when it is absent), ``parse`` the manifest they are."""
        with self._lock:
            held = self._maps.get(directory)
            if held is None or held[0] is not index:
                # Under the lock: threads asking about one layout wait for one reading.
                held = (index, self._map(directory, index, read, parse))
                self._maps[directory] = held
        return list(held[1].get(digest, ()))

    def _map(
        self,
        directory: Path,
        index: Index,
        read: Callable[[Descriptor], bytes | None],
        parse: Callable[[Descriptor, bytes], Manifest],
    ) -> dict[str, list[Descriptor]]:
        where = directory / INDEX_FILE
        listed = [
            e.descriptor
            for e in index.entries
            # A blob listed at the top (some tools do) refers to nothing.
            if not e.descriptor.media_type or mediatypes.is_manifest(e.descriptor.media_type)
        ]
        if len(listed) > MAX_SCANNED_ENTRIES:
            raise LayoutError(
                f"{where} lists {len(listed)} manifests, too many to look for referrers among "
                f"(at most {MAX_SCANNED_ENTRIES})",
                "split the layout: one image, its tags and what refers to it, per layout",
            )
        found: dict[str, dict[str, Descriptor]] = {}
        scanned = 0
        for descriptor in listed:
            key = (directory, descriptor.digest)
            if key not in self._of:
                raw = read(descriptor)
                if raw is None:
                    continue  # an entry without its manifest refers to nothing (yet)
                scanned += len(raw)
                if scanned > MAX_SCANNED_BYTES:
                    raise LayoutError(
                        f"the manifests {where} lists hold more than "
                        f"{limit_text(MAX_SCANNED_BYTES)}, too many to look for referrers among",
                        "split the layout: one image, its tags and what refers to it, per layout",
                    )
                self._of[key] = _referring(descriptor, raw, parse)
            referring = self._of[key]
            if referring is not None:
                found.setdefault(referring[0], {})[referring[1].digest] = referring[1]
        return {subject: list(by_digest.values()) for subject, by_digest in found.items()}


def _referring(
    descriptor: Descriptor, raw: bytes, parse: Callable[[Descriptor, bytes], Manifest]
) -> Referring:
    """What the manifest ``raw`` refers to. Only one that names a subject is parsed whole (and
    refused when it is no manifest): the thousands of others a layout may list are only
    looked at, unless their bytes could hide the name (a JSON escape)."""
    if b"subject" not in raw and b"\\" not in raw:
        return None
    if "subject" not in json_object(raw, f"manifest {descriptor.digest}", LayoutError):
        return None
    manifest = parse(descriptor, raw)
    subject = manifest.subject
    return (subject.digest, described_as_referrer(manifest)) if subject else None
