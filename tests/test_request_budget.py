"""What a sync sends, request by request, against real registries (issues 8 and 15).

Within one run nothing is asked twice: plan's look at the target serves apply (sync, apply -i),
manifests are fetched once, blobs are checked once. A warm run (nothing to do) costs three
requests per image: the source tag (HEAD), the source's tag list (signatures) and the target
tag (a HEAD: a skip costs no manifest GET anywhere). A saved plan applied later looks at the
target again, on purpose. A blob that
several images share crosses the wire once: one GET from the source, then one mount per other
target repository; a refused mount's upload session carries the copy.

Fault proxies sit in front of both registries only to record what arrives; no fault is injected.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.content.manifest import Descriptor
from imagesync.reference import parse_reference
from imagesync.stores.registry.client import RegistryClient
from imagesync.stores.registry.transport import Transport
from imagesync.words import human_bytes
from tests.harness.faultproxy import Fault, FaultProxy, Recorded
from tests.harness.images import Pushed, Pusher, assert_complete, push_image
from tests.harness.registry import RegistryServer

IMAGES = 3


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def kinds(requests: list[Recorded]) -> Counter[tuple[str, str]]:
    """(method, what) per request: what a request is for, without names and digests."""
    counted: Counter[tuple[str, str]] = Counter()
    for request in requests:
        path = request.path.split("?", 1)[0]
        if path == "/v2/":
            what = "ping"
        elif "/manifests/sha256:" in path:
            what = "manifest by digest"
        elif "/manifests/" in path:
            what = "manifest by tag"
        elif "/blobs/uploads/" in path:
            what = "upload"
        elif "/blobs/" in path:
            what = "blob"
        elif path.endswith("/tags/list"):
            what = "tag list"
        elif "/referrers/" in path:
            what = "referrers"
        else:
            what = path
        counted[(request.method, what)] += 1
    return counted


@pytest.fixture
def proxied(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> tuple[FaultProxy, FaultProxy, Path, list[Pushed]]:
    with FaultProxy(source_registry.host) as source, FaultProxy(target_registry.host) as target:
        pushed = [
            push_image(source_registry.host, f"team/app{n}", "1.0", layers=2, seed=70 + n)
            for n in range(IMAGES)
        ]
        entries = "".join(f'- source: "{source.host}/team/app{n}:1.0"\n' for n in range(IMAGES))
        images = tmp_path / "external-images.yaml"
        images.write_text(f"target: {target.host}/mirror\nimages:\n{entries}", encoding="utf-8")
        yield source, target, images, pushed


def test_a_cold_sync_asks_nothing_twice(proxied) -> None:
    source, target, images, pushed = proxied
    code, stdout, stderr = run("sync", "-i", str(images))
    assert code == 0, stdout + stderr
    assert f"Apply: {IMAGES} created" in stdout

    # Every read is sent once: manifests, blob checks, blob downloads, tag lists, referrers.
    reads = [r for r in source.requests + target.requests if r.method in ("GET", "HEAD")]
    repeated = {key: n for key, n in Counter((r.method, r.path) for r in reads).items() if n > 1}
    # The target tag alone is looked at three times: by plan, right before the write (tags are
    # immutable), and after it (the digest read back).
    tag_looks = {k: n for k, n in repeated.items() if k[1].endswith("/manifests/1.0")}
    assert repeated == tag_looks, repeated
    # HEADs all three: a skip must cost no manifest GET anywhere (design §16).
    assert sorted(tag_looks.values()) == [3] * IMAGES
    # No manifest is HEADed before a PUT by digest. A new target repository holds no blob:
    # one look at its tag list says so, where a HEAD per blob would ask the same each time.
    sent = kinds(target.requests)
    assert sent[("HEAD", "manifest by digest")] == 0
    assert sent[("HEAD", "blob")] == 0, sent
    assert sent[("GET", "tag list")] == IMAGES
    assert sent[("GET", "manifest by tag")] == 0
    blobs = sum(len(p.blobs) for p in pushed)
    assert sent[("POST", "upload")] == sent[("PUT", "upload")] == blobs


def test_a_warm_plan_keeps_its_connections(proxied) -> None:
    """A HEAD hands its connection back like any answer: a warm run (HEADs at the source)
    does not open a connection per image, which against a far registry over TLS would cost
    a TCP and a TLS handshake each."""
    source, target, images, _ = proxied
    code, stdout, stderr = run("sync", "-i", str(images))
    assert code == 0, stdout + stderr
    source.connections = target.connections = 0
    code, stdout, stderr = run("plan", "-i", str(images), "--parallelism", "1")
    assert code == 0, stdout + stderr
    assert kinds(source.requests)[("HEAD", "manifest by tag")] == 2 * IMAGES  # both runs
    # One request at a time at the source: one connection carries them all, after the one
    # that asked whether this loopback registry speaks TLS.
    assert source.connections == 2, source.connections
    assert target.connections == 2, target.connections


def test_a_free_stream_opens_its_upload_session_while_its_download_starts(proxied) -> None:
    """With a stream free, a copy does not wait for its upload session before it asks the
    source for the blob: the two go out together, one round trip before the first byte
    instead of two. Every upload POST is held back here; the source must see a blob GET
    meanwhile (a copy that waited would ask only once a POST is answered)."""
    source, target, images, _ = proxied
    target.add(Fault("delay", r"/blobs/uploads/$", count=1000, method="POST", seconds=2.0))

    def blob_read_while_posts_wait() -> bool:
        assert target.wait_for_request(r"/blobs/uploads/$", "POST", timeout=60)
        return source.wait_for_request(r"/blobs/sha256:", "GET", timeout=1.5)

    with ThreadPoolExecutor(max_workers=1) as watcher:  # the command wants the main thread
        seen = watcher.submit(blob_read_while_posts_wait)
        code, stdout, stderr = run("sync", "-i", str(images))
        assert seen.result(timeout=60)
    assert code == 0, stdout + stderr
    assert f"Apply: {IMAGES} created" in stdout


def test_a_warm_sync_costs_three_requests_per_image(proxied) -> None:
    source, target, images, _ = proxied
    code, stdout, stderr = run("sync", "-i", str(images))
    assert code == 0, stdout + stderr
    source.requests.clear()
    target.requests.clear()

    code, stdout, stderr = run("sync", "-i", str(images))
    assert code == 0, stdout + stderr
    assert f"Apply: 0 created, {IMAGES} skipped" in stdout
    assert kinds(target.requests) == Counter({("HEAD", "manifest by tag"): IMAGES})
    sent = kinds(source.requests)
    # The referrers API is probed once per registry: this one lacks it, which is remembered.
    assert sent.pop(("GET", "referrers")) == 1
    assert sent == Counter({("HEAD", "manifest by tag"): IMAGES, ("GET", "tag list"): IMAGES})

    # Without signatures: two.
    source.requests.clear()
    target.requests.clear()
    code, stdout, stderr = run("sync", "-i", str(images), "--no-signatures")
    assert code == 0, stdout + stderr
    assert len(source.requests) + len(target.requests) == 2 * IMAGES


def test_a_saved_plan_looks_at_the_target_again(proxied, tmp_path: Path) -> None:
    _, target, images, _ = proxied
    code, stdout, stderr = run("sync", "-i", str(images))
    assert code == 0, stdout + stderr
    plan = tmp_path / "plan.json"
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(plan))
    assert code == 0, stdout + stderr
    target.requests.clear()

    code, stdout, stderr = run("apply", str(plan))
    assert code == 0, stdout + stderr
    # Each skip is checked once more: the plan may be hours old.
    assert kinds(target.requests) == Counter({("HEAD", "manifest by tag"): IMAGES})


BASE = (2048, 3072)  # two base layers per platform, shared by every image below


def push_shared(registry: str, repository: str, seed: int) -> Pushed:
    """An image over two platforms: the shared base layers, then one layer of its own."""
    return push_image(registry, repository, "1.0", layers=1, base_layers=BASE, seed=seed)


def shared_digests(images: list[Pushed]) -> set[str]:
    listed = Counter(blob.digest for image in images for blob in image.blobs)
    return {digest for digest, count in listed.items() if count > 1}


@pytest.mark.parametrize("how", ["plan, then apply", "in one run"])
def test_a_shared_blob_is_read_once_and_mounted_everywhere_else(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path, how: str
) -> None:
    """Saved plan or one run (where each image's blobs start copying as soon as plan has
    decided it, while shared ones are still in flight for another image): the same count."""
    with FaultProxy(source_registry.host) as source, FaultProxy(target_registry.host) as target:
        pushed = [push_shared(source_registry.host, f"team/app{n}", 80 + n) for n in range(3)]
        shared = shared_digests(pushed)
        assert len(shared) == 2 * len(BASE)  # per platform
        entries = "".join(f'- source: "{source.host}/team/app{n}:1.0"\n' for n in range(3))
        images = tmp_path / "external-images.yaml"
        images.write_text(f"target: {target.host}/mirror\nimages:\n{entries}", encoding="utf-8")
        plan = tmp_path / "plan.json"
        code, stdout, stderr = run("plan", "-i", str(images), "-o", str(plan))
        assert code == 0, stdout + stderr
        # The plan says it: the first image copies the base layers, the others mount them.
        changes = json.loads(plan.read_text())["changes"]
        assert [c["blobs_to_mount"] for c in changes] == [0, len(shared), len(shared)]
        assert "Transfer: 24 blobs" in stdout and f"{2 * len(shared)} to mount" in stdout
        assert not [r for r in target.requests if r.method in ("POST", "PUT")]  # plan writes none
        if how == "in one run":
            source.requests.clear()
            target.requests.clear()
            code, stdout, stderr = run("apply", "-i", str(images), "--format", "json")
        else:
            source.requests.clear()
            target.requests.clear()
            code, stdout, stderr = run("apply", str(plan), "--format", "json")
        assert code == 0, stdout + stderr

    # From the source, every blob once: the shared ones too.
    reads = Counter(r.path.rsplit("/", 1)[1] for r in source.requests if "/blobs/" in r.path)
    distinct = {blob.digest for image in pushed for blob in image.blobs}
    assert reads == Counter(distinct), reads
    # Into the target, one mount per shared blob and other repository, and nothing else.
    # New repositories: no blob is asked for, in either way.
    assert not [r for r in target.requests if "/blobs/sha256:" in r.path]
    mounts = [r for r in target.requests if "mount=" in r.path]
    assert len(mounts) == len(shared) * 2 and all(r.status == 201 for r in mounts)
    assert Counter(r.path.split("mount=")[1].split("&")[0] for r in mounts) == Counter(
        {digest.replace(":", "%3A"): 2 for digest in shared}
    )
    uploads = [r for r in target.requests if r.method == "PUT" and "/blobs/uploads/" in r.path]
    assert len(uploads) == len(distinct)
    report = json.loads(stdout)
    assert report["blobs"] == {"copied": len(distinct), "mounted": 2 * len(shared), "present": 0}
    assert sum(image["blobs"]["mounted"] for image in report["images"]) == 2 * len(shared)
    for image in pushed:
        target_repository = f"mirror/{source.host.replace(':', '-')}/{image.repository}"
        assert_complete(target_registry.host, target_repository, image, check_blob_bytes=True)


def test_a_skipped_image_lends_its_blobs(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """The base layers of a new image are in the target already, under a skipped image of the
    same vendor: they are mounted from there, not read from the source. (A saved plan: in one
    run, a create's copies may begin before plan has looked at the skip.)"""
    with FaultProxy(source_registry.host) as source:
        old, new = (push_shared(source_registry.host, f"team/app{n}", 90 + n) for n in range(2))
        prefix = f"mirror/{source.host.replace(':', '-')}"
        push_shared(target_registry.host, f"{prefix}/team/app0", 90)  # the same bytes: a skip
        images = tmp_path / "external-images.yaml"
        images.write_text(
            f"target: {target_registry.host}/mirror\nimages:\n"
            f'- source: "{source.host}/team/app0:1.0"\n- source: "{source.host}/team/app1:1.0"\n',
            encoding="utf-8",
        )
        plan = tmp_path / "plan.json"
        code, planned, stderr = run("plan", "-i", str(images), "-o", str(plan))
        assert code == 0, planned + stderr
        code, stdout, stderr = run("apply", str(plan))
        assert code == 0, stdout + stderr
    assert "Apply: 1 created, 1 skipped" in stdout
    shared = shared_digests([old, new])
    assert f"8 blobs, {_kib(new)}: 4 to copy" in planned and f"{len(shared)} to mount" in planned
    assert (
        f"4 blobs copied ({human_bytes(new.blob_bytes - _bytes(new, shared))}), 4 mounted" in stdout
    )
    read = {r.path.rsplit("/", 1)[1] for r in source.requests if "/blobs/" in r.path}
    assert read == {blob.digest for blob in new.blobs} - shared
    assert_complete(target_registry.host, f"{prefix}/team/app1", new, check_blob_bytes=True)


def _kib(image: Pushed) -> str:
    return f"{image.blob_bytes / 1024:.1f} KiB"


def _bytes(image: Pushed, digests: set[str]) -> int:
    return sum(blob.size for blob in image.blobs if blob.digest in digests)


def test_a_refused_mount_is_the_upload_session_of_the_copy(
    source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    """A mount from a repository that lacks the blob: the registry answers 202 with an upload
    session, and the copy streams into it (no DELETE of that session, no second POST)."""
    image = push_shared(source_registry.host, "team/app", 95)
    blob = image.blobs[-1]
    with FaultProxy(target_registry.host) as target:
        client = RegistryClient(Transport())
        into = parse_reference(f"{target.host}/mirror/app").repository
        lacking = parse_reference(f"{target.host}/mirror/other").repository
        answer = client.mount_blob(into, blob.digest, lacking)
        assert not answer.mounted and answer.session
        source = parse_reference(f"{source_registry.host}/team/app").repository
        descriptor = Descriptor("application/octet-stream", *blob)
        opener = partial(client.read_blob, source, descriptor)
        client.put_blob(into, descriptor, opener, None, answer.session)
    assert [(r.method, r.status) for r in target.requests] == [("POST", 202), ("PUT", 201)]
    assert Pusher(target_registry.host).blob_digest("mirror/app", blob.digest) == blob.digest


def test_manifests_are_kept_within_a_memory_budget(source_registry) -> None:
    index = push_image(source_registry.host, "team/app", "1.0", seed=90)
    client = RegistryClient(Transport())
    first, second = (
        parse_reference(f"{source_registry.host}/team/app@{child}") for child in index.children[:2]
    )
    client.get_manifest(first)
    sent = client.transport.request_count
    client.get_manifest(first)
    assert client.transport.request_count == sent  # kept

    # Room for one of them: the newer pushes the older out, which is then fetched again.
    client.manifests.budget = len(client.get_manifest(first).raw)
    client.get_manifest(second)
    sent = client.transport.request_count
    client.get_manifest(first)
    assert client.transport.request_count == sent + 1


def test_a_new_tag_in_an_existing_repository_sends_only_what_it_lacks(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    """Its repository exists: plan asks for each blob once (a HEAD), and what is there is
    neither copied nor mounted."""
    with FaultProxy(source_registry.host) as source, FaultProxy(target_registry.host) as target:
        old = push_shared(source_registry.host, "team/app", 60)
        new = push_image(
            source_registry.host, "team/app", "2.0", layers=2, base_layers=BASE, seed=61
        )
        prefix = f"mirror/{source.host.replace(':', '-')}"
        push_shared(target_registry.host, f"{prefix}/team/app", 60)  # 1.0 is there
        images = tmp_path / "external-images.yaml"
        images.write_text(
            f'target: {target.host}/mirror\nimages:\n- source: "{source.host}/team/app:2.0"\n',
            encoding="utf-8",
        )
        code, stdout, stderr = run("sync", "-i", str(images))
        assert code == 0, stdout + stderr
    there = {blob.digest for blob in old.blobs}
    lacking = [blob for blob in new.blobs if blob.digest not in there]
    assert f"transfer: {len(lacking)} blobs" in stdout
    heads = Counter(r.path for r in target.requests if r.method == "HEAD" and "/blobs/" in r.path)
    assert sorted(heads.values()) == [1] * len(new.blobs)
    reads = {r.path.rsplit("/", 1)[1] for r in source.requests if "/blobs/" in r.path}
    assert reads == {blob.digest for blob in lacking}
    there_already = len(new.blobs) - len(lacking)
    assert f"Blobs: {len(lacking)} copied" in stdout
    assert f"0 mounted, {there_already} already there." in stdout
    assert_complete(target_registry.host, f"{prefix}/team/app", new, reference="2.0")
