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
import hashlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TypeVar, cast

from imagesync.errors import ImagesyncError
from imagesync.inputfile import InputMissing, UnreadableInput, limit_text, open_regular
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
HASH_CHUNK = 1024 * 1024

T = TypeVar("T")


class LayoutError(ImagesyncError):
    """A layout that cannot be read or written as it is: damaged, hostile, or not a layout."""


class LayoutTree:
    """The directory ``root`` (a repository named ``oci:DIR``) and the layouts below it."""

    def __init__(self, root: Repository) -> None:
        self.name = root
        self.root = Path(root.path)
        self._lock = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}
        # What this run has read of the tree, by the file's stamp (see :func:`_stamp`).
        self._parsed: dict[tuple[Path, Callable[[bytes], object]], tuple[tuple[int, ...], object]]
        self._parsed = {}
        self._hashed: dict[tuple[tuple[int, ...], str], bool] = {}
        self._directories: dict[Path, Path] = {}

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
        if path != self.root and path.name not in ("", ".", ".."):
            # The directory it is in, resolved once a run: a layout's thousands of blobs are
            # in one. Only the name itself is then looked at, unless it is a link.
            parent = self._directory_inside(path.parent)
            if parent is None:
                return None
            try:
                if not stat.S_ISLNK(os.lstat(parent / path.name).st_mode):
                    return parent / path.name
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as error:
                raise LayoutError(f"{path} cannot be opened: {_reason(error)}") from None
        return self._resolved_inside(path)

    def _directory_inside(self, directory: Path) -> Path | None:
        with self._lock:
            known = self._directories.get(directory)
        if known is not None:
            return known
        real = self._resolved_inside(directory)
        if real is not None:  # one that is absent may be created: looked at again then
            with self._lock:
                self._directories[directory] = real
        return real

    def _resolved_inside(self, path: Path) -> Path | None:
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
        it does not exist); LayoutError, naming what it is, when it is anything else (a FIFO,
        a device, a socket, a directory) or larger than ``limit``. The one way a file of a
        layout is opened: nothing is opened before it is known not to wait, or to be a
        regular file."""
        real = self.inside(path)
        if real is None:
            yield None
            return
        try:
            # The real path holds no link: one there now was put there since, so is refused.
            descriptor = open_regular(real, follow_links=False)
        except InputMissing:  # removed since it was looked at
            yield None
            return
        except UnreadableInput as error:
            raise LayoutError(
                f"{path} cannot be read: {error.reason}",
                "check the layout tree; it may be damaged, or not one imagesync wrote",
            ) from None
        with os.fdopen(descriptor, "rb") as handle:
            size = os.fstat(descriptor).st_size
            if limit is not None and size > limit:
                raise LayoutError(
                    f"{path} is {size} bytes, more than {limit_text(limit)}: not a file "
                    "imagesync reads there",
                    "check the layout tree; it may be damaged, or not one imagesync wrote",
                )
            yield handle

    def read(self, path: Path, limit: int) -> bytes | None:
        """A whole file of at most ``limit`` bytes inside the tree; None when it is absent."""
        with self.open_file(path, limit) as handle:
            return None if handle is None else _read_whole(handle, path, limit)

    def read_parsed(self, path: Path, limit: int, parse: Callable[[bytes], T]) -> T | None:
        """``parse`` of the file at ``path`` (see :meth:`read`), read and parsed again only
        when the file has changed since (by its identity, size and times, and any write of
        this process through :meth:`replace`): an ``index.json`` looked at for every tag and
        subject is read once, not once a look."""
        key = (path, parse)
        with self.open_file(path, limit) as handle:
            if handle is None:
                return None
            stamp = _stamp(os.fstat(handle.fileno()))
            with self._lock:
                cached = self._parsed.get(key)
            if cached is not None and cached[0] == stamp:
                return cast(T, cached[1])
            data = _read_whole(handle, path, limit)
        parsed = parse(data)
        with self._lock:
            self._parsed[key] = (stamp, parsed)
        return parsed

    def hashes_to(self, handle: IO[bytes], digest: str) -> bool:
        """Whether the open regular file ``handle`` hashes to ``digest``: read and hashed once
        per run for each file (by its identity, size and times), whoever asks."""
        key = (_stamp(os.fstat(handle.fileno())), digest)
        with self._lock:
            known = self._hashed.get(key)
        if known is not None:
            return known
        algorithm, _, _ = digest.partition(":")
        if algorithm not in ("sha256", "sha512"):
            return False  # no blob imagesync reads or writes: as if it were not there
        hasher = hashlib.new(algorithm)
        handle.seek(0)
        while chunk := handle.read(HASH_CHUNK):
            hasher.update(chunk)
        good = f"{algorithm}:{hasher.hexdigest()}" == digest
        with self._lock:
            self._hashed[key] = good
        return good

    def hashed(self, path: Path, digest: str) -> None:
        """Remember that the file just put at ``path`` hashes to ``digest`` (its bytes were
        checked on their way in), so that looking at it again reads nothing."""
        with contextlib.suppress(OSError):
            stamp = _stamp(os.stat(path, follow_symlinks=False))
            with self._lock:
                self._hashed[(stamp, digest)] = True

    def is_layout(self, directory: Path) -> bool:
        """Whether ``directory`` holds an image layout (its ``oci-layout`` file, of the one
        version there is); LayoutError when that file says something else."""
        path = directory / LAYOUT_FILE
        version = self.read_parsed(path, MAX_LAYOUT_FILE_BYTES, _layout_version)
        if version is None:
            return False
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
        with lock, self.open_file(directory / LAYOUT_FILE) as handle:
            if handle is None:
                raise LayoutError(f"{directory} is not an image layout (it has no {LAYOUT_FILE})")
            # A file system without locks: this process's lock still holds.
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield

    def replace(self, directory: Path, name: str, body: bytes) -> None:
        """Write ``directory/name`` whole, at once: a reader sees the old file or the new one."""
        path = directory / name
        install(directory, path, [body])
        sync_directory(directory)
        # Its identity changed with the rename, so a cached parse would not be used again;
        # dropped all the same, so that this process never trusts a stamp over its own write.
        with self._lock:
            for key in [k for k in self._parsed if k[0] == path]:
                del self._parsed[key]


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
        # Over whatever has the name: a damaged blob, a FIFO, a file half written by hand.
        os.replace(temporary, final)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise LayoutError(f"cannot write {final}: {_reason(error)}") from None
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


def _read_whole(handle: IO[bytes], path: Path, limit: int) -> bytes:
    data = handle.read(limit + 1)
    if len(data) > limit:  # it grew after it was looked at
        raise LayoutError(f"{path} is larger than {limit_text(limit)}", "check the layout tree")
    return data


def _stamp(status: os.stat_result) -> tuple[int, ...]:
    """A file's identity and state: what changes when it is replaced or written to (ctime
    too, which no one can set back)."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _layout_version(raw: bytes) -> object:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return document.get("imageLayoutVersion") if isinstance(document, dict) else None


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__
