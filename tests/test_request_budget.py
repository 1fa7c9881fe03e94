"""What a sync sends, request by request, against real registries (issue 8's rules).

Within one run nothing is asked twice: plan's look at the target serves apply (sync, apply -i),
manifests are fetched once, blobs are checked once. A warm run (nothing to do) costs three
requests per image: the source tag (HEAD), the source's tag list (signatures) and the target
tag (one GET). A saved plan applied later looks at the target again, on purpose.

Fault proxies sit in front of both registries only to record what arrives; no fault is injected.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

import imagesync.client
from imagesync.cli import main
from imagesync.client import RegistryClient
from imagesync.reference import parse_reference
from imagesync.transport import Transport
from tests.harness.faultproxy import FaultProxy, Recorded
from tests.harness.images import Pushed, push_image
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
    assert sorted(tag_looks.values()) == [2] * IMAGES  # HEAD twice; the GET was plan's
    # No manifest is HEADed before a PUT by digest, no blob HEADed by apply after plan did.
    sent = kinds(target.requests)
    assert sent[("HEAD", "manifest by digest")] == 0
    assert sent[("HEAD", "blob")] == sum(len(p.blobs) for p in pushed), sent
    assert sent[("GET", "manifest by tag")] == IMAGES


def test_a_warm_sync_costs_three_requests_per_image(proxied) -> None:
    source, target, images, _ = proxied
    code, stdout, stderr = run("sync", "-i", str(images))
    assert code == 0, stdout + stderr
    source.requests.clear()
    target.requests.clear()

    code, stdout, stderr = run("sync", "-i", str(images))
    assert code == 0, stdout + stderr
    assert f"Apply: 0 created, {IMAGES} unchanged" in stdout
    assert kinds(target.requests) == Counter({("GET", "manifest by tag"): IMAGES})
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


def test_manifests_are_kept_within_a_memory_budget(source_registry, monkeypatch) -> None:
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
    monkeypatch.setattr(imagesync.client, "MANIFEST_MEMORY", len(client.get_manifest(first).raw))
    client.get_manifest(second)
    sent = client.transport.request_count
    client.get_manifest(first)
    assert client.transport.request_count == sent + 1
