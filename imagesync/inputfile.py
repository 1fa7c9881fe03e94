"""Reading an input file safely: plans, images files, registries configs, docker configs, keys.

An input path may be anything a user, an environment variable or a workflow gives: a device
(``/dev/zero`` never ends), a FIFO (opening it waits for a writer), a directory, a symbolic
link to any of these, or a file far larger than the input could be. Each is refused before
more than ``limit`` bytes are read, and nothing here ever waits.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnreadableInput(Exception):
    """The file cannot be read as an input; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InputMissing(UnreadableInput):
    """There is no file at the path."""


class InputTooLarge(UnreadableInput):
    """The file is larger than the input it should be can ever be."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"it is larger than {limit_text(limit)}")
        self.limit = limit


def read_input(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symbolic links followed), at most ``limit``.

    Raises UnreadableInput when it is not a regular file or cannot be opened, InputTooLarge
    when it holds more than ``limit`` bytes (by its size, or by what reading it gives: a file
    may grow while it is read).
    """
    descriptor = open_regular(path)
    try:
        if os.fstat(descriptor).st_size > limit:
            raise InputTooLarge(limit)
        chunks: list[bytes] = []
        received = 0
        while received <= limit:
            chunk = os.read(descriptor, min(1024 * 1024, limit + 1 - received))
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    except OSError as error:
        raise UnreadableInput(error.strerror or str(error)) from None
    finally:
        os.close(descriptor)
    if received > limit:
        raise InputTooLarge(limit)
    return b"".join(chunks)


def open_regular(path: str | Path, *, follow_links: bool = True) -> int:
    """A descriptor open for reading on the regular file at ``path``, never waiting: the one
    place where an input file is opened (layouts too). UnreadableInput, saying what it is
    instead, when it is anything but a regular file (with ``follow_links`` False, a symbolic
    link too); InputMissing when there is nothing at ``path``.
    """
    try:
        # Looked at before it is opened: opening a device may do something (a tape rewinds),
        # opening a socket fails with a reason that names no socket.
        found = os.stat(path, follow_symlinks=follow_links)
        if not stat.S_ISREG(found.st_mode):
            raise UnreadableInput(f"it is {_kind(found.st_mode)}, not a regular file")
        # O_NONBLOCK: should a FIFO have taken the file's place meanwhile, opening it returns
        # at once instead of waiting for a writer (fstat below refuses it); for a regular
        # file the flag changes nothing. O_NOFOLLOW likewise for a link put there meanwhile.
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        descriptor = os.open(path, flags | (0 if follow_links else os.O_NOFOLLOW))
    except FileNotFoundError as error:
        raise InputMissing(error.strerror or "no such file") from None
    except OSError as error:
        raise UnreadableInput(error.strerror or str(error)) from None
    try:
        mode = os.fstat(descriptor).st_mode
    except OSError as error:
        os.close(descriptor)
        raise UnreadableInput(error.strerror or str(error)) from None
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise UnreadableInput(f"it is {_kind(mode)}, not a regular file")
    return descriptor


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a file"


def limit_text(limit: int) -> str:
    """A size limit in a message: ``4 MiB``, or ``4096 bytes`` when it is no whole MiB."""
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


def json_files(paths: list[str]) -> list[tuple[str, bool]]:
    """``paths`` with each directory replaced by the ``*.json`` files in it and below it,
    sorted: the shards of a plan as CI downloads them (one artifact, one folder, per shard).
    Each comes with whether it was found in a directory (rather than named)."""
    files: list[tuple[str, bool]] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("*.json") if p.is_file())
            if not found:
                raise UnreadableInput(f"{path} is a directory with no .json file in it")
            files.extend((name, True) for name in found)
        else:
            files.append((path, False))
    return files
