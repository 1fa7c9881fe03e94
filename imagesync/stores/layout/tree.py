"""A tree of OCI image layouts on disk: where each file is, and what may be opened there.

Repository ``R`` of the tree ``DIR`` is the image layout ``DIR/R`` (image-spec
``image-layout.md``): an ``oci-layout`` file, ``index.json``, and ``blobs/<alg>/<hex>``. A tree
comes from outside — a disk carried across an air gap — so it is read as a registry's answers
are: files only when they are regular files within their size limit, and nothing that a path
or a symbolic link leads to outside the tree. Directories are created only when a write needs
them (plan writes nothing), one component at a time, each checked before the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from imagesync.errors import ImagesyncError
from imagesync.inputfile import limit_text
from imagesync.reference import Repository

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS = "blobs"
LAYOUT_VERSION = "1.0.0"
# The oci-layout file holds one short JSON object.
MAX_LAYOUT_FILE_BYTES = 4096
# Temporary files of this tool in a layout (a blob or index.json on its way in): what a
# SIGKILL leaves behind has this prefix.
TEMPORARY_PREFIX = ".imagesync-"


class LayoutError(ImagesyncError):
    """A layout that cannot be read or written as it is: damaged, hostile, or not a layout."""


class LayoutTree:
    """The directory ``root`` (a repository named ``oci:DIR``) and the layouts below it."""

    def __init__(self, root: Repository) -> None:
        self.name = root
        self.root = Path(root.path)
        self._lock = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}

    def __str__(self) -> str:
        return str(self.name)

    def contains(self, repository: Repository) -> bool:
        """Whether ``repository`` is a layout of this tree (the tree itself is none)."""
        return self.name.contains(repository) and repository != self.name

    def directory(self, repository: Repository) -> Path:
        """The directory of ``repository``'s layout."""
        if not self.contains(repository):
            raise LayoutError(
                f"{repository} is not a layout of the tree {self.name}",
                "re-run plan; do not edit plan files by hand",
            )
        return Path(repository.path)

    # -- reading -------------------------------------------------------------------------

    def inside(self, path: Path) -> Path | None:
        """The real path of ``path`` when it exists, None when it does not; LayoutError when
        it, or a link on the way to it, leads outside the tree."""
        try:
            real = path.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, RuntimeError) as error:  # a loop of links, a permission
            raise LayoutError(f"{path} cannot be opened: {_reason(error)}") from None
        root = self.root.resolve()
        if real != root and root not in real.parents:
            raise LayoutError(
                f"{path} leads outside the layout tree {self.root} (to {real})",
                "a layout tree must hold its files itself: copy it without symbolic links "
                "that point elsewhere",
            )
        return real

    @contextlib.contextmanager
    def open_file(self, path: Path, limit: int | None = None) -> Iterator[IO[bytes] | None]:
        """``path`` opened for reading when it is a regular file inside the tree (None when
        it does not exist); LayoutError when it is something else or larger than ``limit``."""
        real = self.inside(path)
        if real is None:
            yield None
            return
        try:
            handle = open(real, "rb")  # noqa: SIM115 # closed below, after the caller's reads
        except OSError as error:
            raise LayoutError(f"{path} cannot be opened: {_reason(error)}") from None
        with handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise LayoutError(f"{path} is not a regular file", "check the layout tree")
            if limit is not None and status.st_size > limit:
                raise LayoutError(
                    f"{path} is {status.st_size} bytes, more than {limit_text(limit)}: not a file "
                    "imagesync reads there",
                    "check the layout tree; it may be damaged, or not one imagesync wrote",
                )
            yield handle

    def read(self, path: Path, limit: int) -> bytes | None:
        """A whole file of at most ``limit`` bytes inside the tree; None when it is absent."""
        with self.open_file(path, limit) as handle:
            if handle is None:
                return None
            data = handle.read(limit + 1)
        if len(data) > limit:  # it grew after it was looked at
            raise LayoutError(f"{path} is larger than {limit_text(limit)}", "check the layout tree")
        return data

    def is_layout(self, directory: Path) -> bool:
        """Whether ``directory`` holds an image layout (its ``oci-layout`` file, of the one
        version there is); LayoutError when that file says something else."""
        path = directory / LAYOUT_FILE
        raw = self.read(path, MAX_LAYOUT_FILE_BYTES)
        if raw is None:
            return False
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            document = None
        version = document.get("imageLayoutVersion") if isinstance(document, dict) else None
        if version != LAYOUT_VERSION:
            raise LayoutError(
                f"{path} does not say imageLayoutVersion {LAYOUT_VERSION}: not an OCI image "
                "layout imagesync reads",
                "check the layout tree",
            )
        return True

    # -- writing -------------------------------------------------------------------------

    def make_layout(self, directory: Path) -> None:
        """Create ``directory`` as an image layout, with its ``blobs/sha256``, unless it is
        one already."""
        self.make_directory(directory / BLOBS / "sha256")
        path = directory / LAYOUT_FILE
        if self.inside(path) is not None:
            self.is_layout(directory)
            return
        # Made whole under a temporary name, then linked into place: a reader never sees it
        # half written, a second writer's link fails (it is there), and once there it is never
        # replaced, since writers lock it (see :meth:`locked`).
        handle, temporary = temporary_file(directory)
        try:
            with handle:
                handle.write(json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass  # another writer made it meanwhile
        except OSError as error:
            raise LayoutError(f"cannot create {path}: {_reason(error)}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        sync_directory(directory)

    def make_directory(self, directory: Path) -> None:
        """Create ``directory`` (and what it lacks above it) inside the tree, one component at
        a time: an existing one that leads outside the tree is refused before anything is
        created below it."""
        if self.inside(self.root) is None:  # the tree itself, where the user named it
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise LayoutError(f"cannot create {self.root}: {_reason(error)}") from None
        current = self.root
        for part in directory.relative_to(self.root).parts:
            current = current / part
            if self.inside(current) is not None:
                if not current.is_dir():
                    raise LayoutError(f"{current} is not a directory", "check the layout tree")
                continue
            try:
                current.mkdir()
            except FileExistsError:  # made meanwhile by another writer, or a link to nowhere
                pass
            except OSError as error:
                raise LayoutError(f"cannot create {current}: {_reason(error)}") from None
            if self.inside(current) is None:
                raise LayoutError(
                    f"cannot create {current}: a link that leads nowhere is in the way",
                    "check the layout tree",
                )

    @contextlib.contextmanager
    def locked(self, directory: Path) -> Iterator[None]:
        """Hold the layout ``directory`` for an update of its ``index.json``: one thread of
        this process at a time, and (by a lock on its ``oci-layout`` file, which is never
        replaced) one process at a time."""
        with self._lock:
            lock = self._locks.setdefault(directory, threading.Lock())
        with lock:
            real = self.inside(directory / LAYOUT_FILE)
            if real is None:
                raise LayoutError(f"{directory} is not an image layout (it has no {LAYOUT_FILE})")
            with open(real, "rb") as handle:
                # A file system without locks: this process's lock still holds.
                with contextlib.suppress(OSError):
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                yield

    def replace(self, directory: Path, name: str, body: bytes) -> None:
        """Write ``directory/name`` whole, at once: a reader sees the old file or the new one."""
        install(directory, directory / name, [body])
        sync_directory(directory)


def install(directory: Path, final: Path, chunks: Iterable[bytes]) -> None:
    """Put ``chunks`` at ``final``: into a temporary file in the layout ``directory``, synced,
    then renamed, once every chunk has come (an error on the way leaves nothing behind)."""
    handle, temporary = temporary_file(directory)
    try:
        with handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def temporary_file(directory: Path) -> tuple[IO[bytes], Path]:
    """A new temporary file in the layout ``directory``, open for writing, and its path."""
    try:
        descriptor, name = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=".tmp", dir=directory)
    except OSError as error:
        raise LayoutError(f"cannot write in {directory}: {_reason(error)}") from None
    return os.fdopen(descriptor, "wb"), Path(name)


def sync_directory(directory: Path) -> None:
    """Make the names just created or renamed in ``directory`` survive a power cut."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a directory; the data itself was synced
    finally:
        os.close(descriptor)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__
