"""Upload sessions kept across runs, so that an apply killed midway (SIGKILL, a cancelled
runner) and run again sends a large blob from the registry's offset (design §17).

One small file per target repository and blob, in ``IMAGESYNC_STATE_DIR`` (else
``$XDG_CACHE_HOME/imagesync``, else ``~/.cache/imagesync``), under ``uploads/``: the upload
session's location and the bytes sent into it. The location is a capability URL the registry
gave (it may carry a signed ``_state``), not a credential of the user: no token, password or
header is ever written, the file is private to its owner (0600), logs redact ``_state``
(:func:`imagesync.redact.redact_url`), and a location read back is used only when it is on the
target registry itself (a file edited to point elsewhere cannot draw credentials away). A
session the registry has forgotten is dropped; entries older than a week are ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imagesync.reference import Repository

log = logging.getLogger("imagesync.stores.registry.client")

STATE_DIR_ENV = "IMAGESYNC_STATE_DIR"
MAX_AGE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Saved:
    """An upload session of a blob, and how many of its bytes were sent into it."""

    location: str
    sent: int


def state_directory() -> Path:
    chosen = os.environ.get(STATE_DIR_ENV, "").strip()
    if chosen:
        return Path(chosen)
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache) if cache else Path.home() / ".cache") / "imagesync"


class UploadJournal:
    """The upload sessions of large blobs, by target repository and digest. Thread-safe (one
    file per blob; a blob is uploaded by one task at a time). A journal that cannot be
    written only loses the resume after a kill: it never fails the copy."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = (directory or state_directory()) / "uploads"

    def get(self, target: Repository, digest: str) -> Saved | None:
        path = self._path(target, digest)
        try:
            if time.time() - path.stat().st_mtime > MAX_AGE_SECONDS:
                return None
            document = json.loads(path.read_text(encoding="utf-8"))
            saved = Saved(str(document["location"]), int(document["sent"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if document.get("target") != str(target) or document.get("digest") != digest:
            return None
        return saved

    def put(self, target: Repository, digest: str, saved: Saved) -> None:
        document = {
            "target": str(target),
            "digest": digest,
            "location": saved.location,
            "sent": saved.sent,
        }
        try:
            self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor, name = tempfile.mkstemp(prefix=".upload-", dir=self._directory)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            os.replace(name, self._path(target, digest))
        except OSError as error:
            log.debug("cannot keep the upload session of %s: %s", digest, error)

    def drop(self, target: Repository, digest: str) -> None:
        with contextlib.suppress(OSError):
            self._path(target, digest).unlink()

    def _path(self, target: Repository, digest: str) -> Path:
        key = hashlib.sha256(f"{target}@{digest}".encode()).hexdigest()[:40]
        return self._directory / f"{key}.json"
