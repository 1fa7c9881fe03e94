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
from dataclasses import dataclass
from typing import Any

from imagesync.content import mediatypes
from imagesync.content.documents import json_object
from imagesync.content.manifest import BadManifest, Descriptor
from imagesync.redact import excerpt
from imagesync.stores.layout.tree import INDEX_FILE, LayoutError

REF_NAME = "org.opencontainers.image.ref.name"
# A layout with a few thousand tags is a big one; a larger index.json is not one to read.
MAX_INDEX_BYTES = 16 * 1024 * 1024


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

    def tagged(self, tag: str, where: str) -> Descriptor | None:
        """The descriptor tagged ``tag``; LayoutError when two entries claim it."""
        found = [e.descriptor for e in self.entries if e.tag == tag]
        if len(found) > 1:
            raise LayoutError(
                f"{where} names tag {excerpt(tag, 128)} {len(found)} times",
                "check the layout tree: a tag names one manifest",
            )
        return found[0] if found else None

    def listed(self, digest: str) -> Descriptor | None:
        """An entry's descriptor for ``digest``, tagged or not."""
        return next((e.descriptor for e in self.entries if e.descriptor.digest == digest), None)

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
