"""Hostile OCI image layouts, made by hand as an attacker would (issue 30): a FIFO, a socket or
a directory where a file should be, a blob with the right name and size but other bytes, an
index with more entries than any real one. Each must end at once (no hang: every command runs
in its own process under a timeout), with a message rather than a traceback, and write nothing
where the input was refused.

Layouts are written by ``tests/harness/layouts.py``, apart from imagesync.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from imagesync.content.manifest import Descriptor
from imagesync.reference import layout_repository, parse_layout_tree
from imagesync.stores.layout import blobs, index
from imagesync.stores.layout.store import LayoutStore
from imagesync.stores.layout.tree import LayoutError, LayoutTree
from tests.harness.images import OCI_MANIFEST, Pushed, digest_of, push_image, push_referrer
from tests.harness.layouts import LayoutPusher, layout_problems, tagged_entries

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "demo.example/app"
# Far more than any of these commands takes; a hang is what it catches.
DEADLINE = 60


def imagesync(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``imagesync ARGS`` in a process of its own, killed at DEADLINE: a hang fails the test
    instead of stopping the suite."""
    command = [sys.executable, "-m", "imagesync", *(str(a) for a in args)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"imagesync {' '.join(command[3:])} still ran after {DEADLINE} s: it hangs")
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path, Pushed]:
    """A source tree with demo.example/app:1.0 (one platform) and its images file."""
    source = tmp_path / "source"
    pushed = push_image(LayoutPusher(source), REPOSITORY, "1.0", platforms=[("linux", "amd64")])
    images = tmp_path / "images.yaml"
    images.write_text(f'target: registry.internal/mirror\nimages:\n- source: "{REPOSITORY}:1.0"\n')
    return source, images, pushed


def blob_file(tree: Path, digest: str) -> Path:
    return tree / REPOSITORY / "blobs" / "sha256" / digest.split(":", 1)[1]


def layer_of(pushed: Pushed) -> str:
    return (pushed.manifests[0].blobs if pushed.manifests else pushed.blobs)[-1].digest


def manifest_of(pushed: Pushed) -> str:
    return pushed.manifests[0].digest if pushed.manifests else pushed.digest


def fifo_at(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


# -- a FIFO where a file should be, source side and target side ----------------------------

SOURCE_FILES = {
    "index.json": lambda pushed: "index.json",
    "oci-layout": lambda pushed: "oci-layout",
    "a manifest": lambda pushed: f"blobs/sha256/{manifest_of(pushed).split(':')[1]}",
    "a layer": lambda pushed: f"blobs/sha256/{layer_of(pushed).split(':')[1]}",
}


@pytest.mark.parametrize("where", list(SOURCE_FILES))
def test_a_fifo_in_the_source_layout_is_refused_at_once(exported, tmp_path: Path, where: str):
    source, images, pushed = exported
    fifo = source / REPOSITORY / SOURCE_FILES[where](pushed)
    fifo_at(fifo)
    disk = tmp_path / "disk"
    done = imagesync("sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{fifo} cannot be read: it is a pipe (FIFO), not a regular file" in done.stdout
    assert tagged_entries(disk / REPOSITORY) == {}
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize("where", ["index.json", "oci-layout", "a layer"])
def test_a_fifo_in_the_target_layout_is_refused_and_nothing_written(
    exported, tmp_path: Path, where: str
) -> None:
    """The target layout holds another image (so its blobs are looked at), and a FIFO."""
    source, images, pushed = exported
    disk = tmp_path / "disk"
    push_image(LayoutPusher(disk), REPOSITORY, "other", seed=5, platforms=[("linux", "amd64")])
    layer = blob_file(disk, layer_of(pushed))
    layer.write_bytes(b"")  # for fifo_at to replace
    fifo = {"a layer": layer}.get(where, disk / REPOSITORY / where)
    fifo_at(fifo)
    before = {p: p.lstat().st_mtime_ns for p in (disk / REPOSITORY).rglob("*")}
    done = imagesync("sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{fifo} cannot be read: it is a pipe (FIFO), not a regular file" in done.stdout
    assert {p: p.lstat().st_mtime_ns for p in (disk / REPOSITORY).rglob("*")} == before
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_fifo_plan_in_a_layout_of_many_images_fails_only_its_image(tmp_path: Path) -> None:
    """Two images from one source tree: the one whose layout holds a FIFO fails, the other is
    exported whole."""
    source = tmp_path / "source"
    push_image(LayoutPusher(source), "demo.example/one", "1.0", platforms=[("linux", "amd64")])
    push_image(LayoutPusher(source), "demo.example/two", "1.0", seed=2)
    fifo_at(source / "demo.example/one/index.json")
    images = tmp_path / "images.yaml"
    images.write_text(
        "target: registry.internal/mirror\nimages:\n"
        '- source: "demo.example/one:1.0"\n- source: "demo.example/two:1.0"\n'
    )
    disk = tmp_path / "disk"
    done = imagesync("sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert done.returncode == 1, done.stdout
    assert "pipe (FIFO), not a regular file" in done.stdout
    assert tagged_entries(disk / "demo.example/two").keys() == {"1.0"}
    assert layout_problems(disk / "demo.example/two") == []
    assert not (disk / "demo.example/one").exists()


# -- the one reader: whatever is not a regular file is named, never opened to wait ----------


def test_the_layout_reader_names_what_it_refuses(tmp_path: Path) -> None:
    short = Path(tempfile.mkdtemp(prefix="l", dir="/tmp"))  # a socket's path is short
    try:
        tree = LayoutTree(parse_layout_tree(f"oci:{short}"))
        os.mkfifo(short / "fifo")
        (short / "directory").mkdir()
        listening = socket.socket(socket.AF_UNIX)
        listening.bind(str(short / "socket"))
        (short / "link").symlink_to(short / "fifo")
        kinds = {
            "fifo": "a pipe (FIFO)",
            "directory": "a directory",
            "socket": "a socket",
            "link": "a pipe (FIFO)",  # a link inside the tree is followed, then judged
        }
        for name, kind in kinds.items():
            started = time.monotonic()
            with pytest.raises(LayoutError) as refused:
                tree.read(short / name, 1024)
            assert f"{short / name} cannot be read: it is {kind}, not a regular file" in str(
                refused.value
            )
            assert time.monotonic() - started < 5
        assert tree.read(short / "absent", 1024) is None
        listening.close()
    finally:
        shutil.rmtree(short)


# -- a blob with the right name and size but other bytes -----------------------------------


def damaged_copy(source: Path, disk: Path, digest: str) -> Path:
    """``disk``'s layout given every blob of ``source``'s (no tag, as an interrupted export
    leaves it), the blob ``digest`` with its first byte changed: same name, same size."""
    shutil.copytree(source / REPOSITORY / "blobs", disk / REPOSITORY / "blobs")
    (disk / REPOSITORY / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    path = blob_file(disk, digest)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_blob_in_the_target_counts_as_absent_and_is_rewritten(
    exported, tmp_path: Path
) -> None:
    source, images, pushed = exported
    disk = tmp_path / "disk"
    layer = layer_of(pushed)
    damaged = damaged_copy(source, disk, layer)
    planned = imagesync("plan", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    # The one damaged layer is to be copied; every whole blob counts as there.
    assert "Transfer: 1 blob, 1.0 KiB." in planned.stdout, planned.stdout
    done = imagesync("sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert digest_of(damaged.read_bytes()) == layer
    assert layout_problems(disk / REPOSITORY) == []
    assert tagged_entries(disk / REPOSITORY) == {"1.0": pushed.digest}
    again = imagesync("plan", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert "Plan: 0 to create, 1 to skip." in again.stdout, again.stdout


def test_a_damaged_blob_is_hashed_once_a_run_and_a_whole_one_counts(tmp_path: Path) -> None:
    source = tmp_path / "source"
    pushed = push_image(LayoutPusher(source), REPOSITORY, "1.0", platforms=[("linux", "amd64")])
    disk = tmp_path / "disk"
    layer = layer_of(pushed)
    damaged_copy(source, disk, layer)
    tree = LayoutTree(parse_layout_tree(f"oci:{disk}"))
    directory = disk / REPOSITORY
    hashed: list[str] = []
    original = tree.hashes_to

    def counted(handle, digest):  # type: ignore[no-untyped-def]
        hashed.append(digest)
        return original(handle, digest)

    tree.hashes_to = counted  # type: ignore[method-assign]
    whole = manifest_of(pushed)
    for _ in range(3):
        assert blobs.blob_size(tree, directory, layer) is None
        assert blobs.blob_size(tree, directory, whole) == blob_file(disk, whole).stat().st_size
    # Asked three times each, read once each: what hashes_to answered the later times came
    # from what it remembered (the counter sees every call; the reads are the first two).
    assert hashed.count(layer) == 3 and len(tree._hashed) == 2


def test_a_blob_of_another_size_counts_as_absent_without_a_read(tmp_path: Path) -> None:
    """Size first: a file of the wrong size under a blob's name is not hashed at all; one of
    the right size is, once, and counts only when its bytes hash to the name."""
    source = tmp_path / "source"
    pushed = push_image(LayoutPusher(source), REPOSITORY, "1.0", platforms=[("linux", "amd64")])
    disk = tmp_path / "disk"
    layer = layer_of(pushed)
    damaged = damaged_copy(source, disk, layer)
    size = damaged.stat().st_size
    tree = LayoutTree(parse_layout_tree(f"oci:{disk}"))
    directory = disk / REPOSITORY
    hashed: list[str] = []
    original = tree.hashes_to

    def counted(handle, digest):  # type: ignore[no-untyped-def]
        hashed.append(digest)
        return original(handle, digest)

    tree.hashes_to = counted  # type: ignore[method-assign]
    described = Descriptor("application/vnd.oci.image.layer.v1.tar", layer, size)
    damaged.write_bytes(damaged.read_bytes() + b"x")  # one byte more: another size
    assert not blobs.has_blob(tree, directory, described)
    assert hashed == []
    damaged.write_bytes(damaged.read_bytes()[:-1])  # the right size, a changed first byte
    assert not blobs.has_blob(tree, directory, described)
    assert hashed == [layer]
    shutil.copyfile(blob_file(source, layer), damaged)  # whole again
    assert blobs.has_blob(tree, directory, described)


# -- referrer discovery: linear, and bounded like a registry's ------------------------------


def test_referrer_discovery_reads_each_manifest_once_whatever_the_subjects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    pusher = LayoutPusher(source)
    image = push_image(pusher, REPOSITORY, "1.0", platforms=[("linux", "amd64")])
    sboms = [
        push_referrer(pusher, REPOSITORY, image, seed=s, update_tag_schema=False) for s in (1, 2)
    ]
    tree = parse_layout_tree(f"oci:{source}")
    store = LayoutStore(LayoutTree(tree))
    reads: list[str] = []
    read_small = blobs.read_small

    def counted(tree_, directory, digest, limit):  # type: ignore[no-untyped-def]
        reads.append(digest)
        return read_small(tree_, directory, digest, limit)

    monkeypatch.setattr(blobs, "read_small", counted)
    repository = layout_repository(tree, REPOSITORY)
    subjects = [image.digest, *(m.digest for m in image.manifests), *(s.digest for s in sboms)]
    for _ in range(5):
        for subject in subjects:
            found = store.referrers(repository, subject)
            expected = {s.digest for s in sboms} if subject == image.digest else set()
            assert {d.digest for d in found} == expected
    assert len(reads) == len(set(reads)), reads

    # A referrer written by this process is found at once: its write of index.json is seen.
    third = push_referrer(pusher, REPOSITORY, image, seed=3, update_tag_schema=False)
    later = os.stat(source / REPOSITORY / "index.json")
    os.utime(source / REPOSITORY / "index.json", ns=(later.st_atime_ns, later.st_mtime_ns))
    assert third.digest in {d.digest for d in store.referrers(repository, image.digest)}


def test_a_layout_with_more_entries_than_a_registry_would_page_is_not_searched(
    exported, tmp_path: Path
) -> None:
    """Entries that point at nothing: the count alone is refused, before any is read, and
    said, as a registry whose referrers pages do not end is: the image itself is copied."""
    source, images, pushed = exported
    path = source / REPOSITORY / "index.json"
    document = json.loads(path.read_text())
    for number in range(index.MAX_SCANNED_ENTRIES + 1):
        digest = digest_of(b"%d" % number)
        document["manifests"].append({"mediaType": OCI_MANIFEST, "digest": digest, "size": 9})
    path.write_text(json.dumps(document))
    disk = tmp_path / "disk"
    done = imagesync("sync", "-i", images, "--source-layout", source, "-r", f"oci:{disk}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "warning: signatures and referrers could not be looked up" in done.stdout
        and f"too many to look for referrers among (at most {index.MAX_SCANNED_ENTRIES})"
        in done.stdout
    ), done.stdout
    assert tagged_entries(disk / REPOSITORY) == {"1.0": pushed.digest}
    assert layout_problems(disk / REPOSITORY) == []


def test_manifests_larger_in_all_than_a_registry_would_send_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    pusher = LayoutPusher(source)
    image = push_image(pusher, REPOSITORY, "1.0", platforms=[("linux", "amd64")])
    push_referrer(pusher, REPOSITORY, image, update_tag_schema=False)
    monkeypatch.setattr(index, "MAX_SCANNED_BYTES", 1024)
    tree = parse_layout_tree(f"oci:{source}")
    store = LayoutStore(LayoutTree(tree))
    with pytest.raises(LayoutError, match="too many to look for referrers among"):
        store.referrers(layout_repository(tree, REPOSITORY), image.digest)
