"""A blob's download that goes on where it broke (design §17): ``Range: bytes=N-``.

A body that breaks after N bytes is asked for again from byte N of the endpoint that served
it (the registry's redirect to blob storage is followed again, the ``Range`` header with it).
Only a ``206`` whose ``Content-Range`` starts at N and names the blob's size is taken as the
rest; a ``200`` is the whole blob again, whose first N bytes are passed over (read, not handed
on). The digest is checked across the pieces by the one :func:`verified` stream around them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import requests
import urllib3

from imagesync.content.manifest import Descriptor
from imagesync.errors import RegistryError
from imagesync.stores.registry.answers import Answer, raise_for_status
from imagesync.stores.registry.core import Core, Endpoint, Read
from imagesync.stores.registry.netfailure import broken_body
from imagesync.stores.store import ReadFrom, TransferBroken
from imagesync.stores.stream import skipped, verified

log = logging.getLogger("imagesync.stores.registry.client")

# A blob passes in chunks of up to CHUNK_SIZE (fewer, larger writes on fast links). The first
# is FIRST_CHUNK and each next one twice the last: a chunk is read whole before it is sent, so
# on a slow link a large first chunk would hold the upload back while it arrives.
CHUNK_SIZE = 1024 * 1024
FIRST_CHUNK = 64 * 1024
# Reads that broke again before a single new byte came, that are asked for again here. None:
# such a break is the caller's, who retries within --retries and its backoff (a fault that
# never clears costs --retries requests, not more).
MAX_FRUITLESS_RESUMES = 0
# What a request must have brought before it broke for the break to be resumed here: a link
# that gives a few bytes a connection (or a small blob, quicker read again) is the caller's.
MIN_PROGRESS = 1024 * 1024
# What goes wrong while a body is read after the status line arrived: resets, truncation.
_BODY_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def range_header(offset: int) -> dict[str, str] | None:
    return {"Range": f"bytes={offset}-"} if offset else None


def ranged_rest(answer: Answer, offset: int, size: int) -> bool:
    """Whether ``answer`` is the blob from ``offset`` to its end (a 206 that says so)."""
    if answer.status_code != 206:
        return False
    found = _CONTENT_RANGE.fullmatch((answer.headers.get("Content-Range") or "").strip())
    if found is None:
        return False
    first, last, total = found.groups()
    return int(first) == offset and int(last) == size - 1 and total in (str(size), "*")


class RangedRead:
    """One blob's download, resumed where it breaks; :meth:`close` ends it."""

    def __init__(
        self, core: Core, blob: Descriptor, read: Read, where: str, start: ReadFrom | None
    ) -> None:
        self._core = core
        self._blob = blob
        self._read = read
        self._where = where
        self._start = start or ReadFrom()
        self._answer: Answer | None = None
        self._endpoint: Endpoint | None = None

    def close(self) -> None:
        if self._answer is not None:
            self._answer.close()

    def chunks(self) -> Iterator[bytes]:
        """The checked bytes from ``start.offset`` on (the first request is sent here)."""
        offset = self._start.offset
        if offset and self._start.hasher is None:
            # The bytes before ``offset`` are not hashed yet: read (not handed on) again.
            answer = self._request(0)
            raise_for_status(answer, f"GET blob {self._blob.digest} from {self._where}")
            return skipped(verified(self._body(answer, 0), self._blob), offset)
        answer = self._request(offset)
        if offset and not ranged_rest(answer, offset, self._blob.size):
            raise_for_status(answer, f"GET blob {self._blob.digest} from {self._where}")
            # The whole blob again: hashed from its start, handed on from ``offset``.
            return skipped(verified(self._body(answer, 0), self._blob), offset)
        raise_for_status(answer, f"GET blob {self._blob.digest} from {self._where}")
        return verified(self._body(answer, offset), self._blob, self._start)

    def _request(self, offset: int) -> Answer:
        read = Read(
            self._read.repository,
            "GET",
            self._read.path,
            self._read.pull,
            self._read.at,
            headers=range_header(offset),
            stream=True,
        )
        if self._endpoint is None:
            answer, self._endpoint = self._core.read(read)
        else:
            answer = self._core.send(self._endpoint, read)
        self.close()
        self._answer = answer
        return answer

    def _body(self, answer: Answer, position: int) -> Iterator[bytes]:
        """Raw bytes from ``position`` to the blob's end, asked for again where they break;
        ``skip``: bytes of the body at hand that come before ``position`` (a resumed read
        answered with the whole blob)."""
        raw: Any = answer.raw
        size, fruitless, skip, asked_at, resumes = FIRST_CHUNK, 0, 0, position, 0
        while True:
            read, error = _read_some(raw, size)
            chunk = read[skip:] if skip else read
            skip = max(0, skip - len(read))
            if chunk:  # the bytes before a break are kept
                position += len(chunk)
                yield chunk
                size = min(2 * size, CHUNK_SIZE)
            if error is None:
                if not read:
                    return
                continue
            if position >= self._blob.size:
                return
            fruitless = 0 if position - asked_at >= MIN_PROGRESS else fruitless + 1
            if fruitless > MAX_FRUITLESS_RESUMES:
                raise self._broken(position, error) from None
            resumes += 1
            raw, skip = self._resume(position, error, resumes)
            asked_at = position

    def _resume(self, position: int, error: BaseException, attempt: int) -> tuple[Any, int]:
        """Ask for the blob again from ``position``: the new raw body, and how many of its
        first bytes to pass over (all before ``position`` when the answer is not a range)."""
        log.debug(
            "retry %d of the download of %s from byte %d (it broke: %s)",
            attempt,
            self._blob.digest,
            position,
            broken_body(error),
        )
        try:
            answer = self._request(position)
        except RegistryError as again:
            raise self._broken(position, error, again.message) from None
        if ranged_rest(answer, position, self._blob.size):
            skip = 0
        elif answer.status_code == 200:
            skip = position  # the whole blob again: no range honoured
        else:
            raise self._broken(position, error, f"asked again, it answered {answer.status_code}")
        if self._start.resumed is not None:
            self._start.resumed(position)
        return answer.raw, skip

    def _broken(self, position: int, error: BaseException, more: str = "") -> TransferBroken:
        detail = broken_body(error) + (f"; {more}" if more else "")
        return TransferBroken(
            f"the download of blob {self._blob.digest} from {self._where} broke off after "
            f"{position} of {self._blob.size} bytes: {detail}"
        )


def _read_some(raw: Any, size: int) -> tuple[bytes, BaseException | None]:
    """Up to ``size`` bytes of a body (fewer at its end), and the error that stopped them:
    the bytes that came before a break are kept (``read(size)`` would drop them with it)."""
    pieces: list[bytes] = []
    got = 0
    while got < size:
        try:
            piece = raw.read1(size - got, decode_content=False)
        except _BODY_ERRORS as error:
            return b"".join(pieces), error
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), None
