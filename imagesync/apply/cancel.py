"""Stopping an apply (Ctrl-C, SIGTERM): work not begun is not begun, an image under way stops
before its tag is written."""

from __future__ import annotations

import threading

from imagesync.errors import ImagesyncError


class Interrupted(ImagesyncError):
    """Apply was asked to stop (Ctrl-C, SIGTERM) before this image's tag was written."""


def check_cancel(cancel: threading.Event) -> None:
    """Raise Interrupted when the apply is being stopped: called before each write that could
    wait, so that a stop is felt at once and no tag follows."""
    if cancel.is_set():
        raise Interrupted("interrupted before the tag was written; nothing is tagged")
