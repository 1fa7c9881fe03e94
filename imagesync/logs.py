"""Logging to stderr, with every record passed through the secret filter and made printable:
a registry's words in a log line never start a line of their own in a CI log."""

from __future__ import annotations

import logging
import sys

from imagesync.printable import printable
from imagesync.redact import secrets


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = printable(secrets(record.getMessage()))
        record.args = None
        return True


def configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    handler.addFilter(_Redacting())
    root = logging.getLogger("imagesync")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False
    # oras-py logs through its own logger; keep it quiet unless debugging.
    logging.getLogger("oras").setLevel(logging.DEBUG if debug else logging.ERROR)
