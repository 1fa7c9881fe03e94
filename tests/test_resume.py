"""Large blobs over links that break (issue 31, design §17): reads go on with ``Range``,
uploads go up in chunks that resume from the registry's offset, a killed apply goes on where
the upload session (or a layout's temporary file) stopped. Bytes are counted at the fault
proxy, between imagesync and the real registry."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from imagesync.stores.layout.partial import partial_path
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import raw_digest
from tests.test_apply_registry import _imagesync, images_file, plan_to, run

pytestmark = pytest.mark.registry

MIB = 1024 * 1024
SIZE = 64 * MIB
CUT = 8 * MIB
FOREVER = 10_000


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Chunked from 32 MiB, in chunks of 4 MiB (GHCR's limit); upload sessions kept under
    tmp_path."""
    monkeypatch.setenv("IMAGESYNC_CHUNK_THRESHOLD", str(32 * MIB))
    monkeypatch.setenv("IMAGESYNC_CHUNK_BYTES", str(4 * MIB))
    monkeypatch.setenv("IMAGESYNC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("IMAGESYNC_RETRY_BASE_DELAY", "0.05")


def _big(source: str) -> str:
    """Push an image with one 64 MiB layer; its manifest digest."""
    pushed = push_image(
        source, "team/big", "1.0", platforms=[("linux", "amd64")], index=False, layers=[SIZE]
    )
    return pushed.digest


def _plan(tmp_path: Path, target: str, source: str) -> Path:
    images = images_file(
        tmp_path, target, f'- source: "{source}/team/big:1.0"\n  amd64Only: true\n'
    )
    plan_to(tmp_path, images)
    return tmp_path / "plan.json"


def _apply(plan: Path) -> dict:  # type: ignore[type-arg]
    code, stdout, stderr = run("apply", str(plan), "--format", "json", "--retries", "3")
    assert code == 0, stdout + stderr
    report: dict = json.loads(stdout)  # type: ignore[type-arg]
    return report


def _target_ref(target: RegistryServer, source: str) -> str:
    return f"{target.host}/mirror/{source.replace(':', '-')}/team/big:1.0"


@pytest.mark.parametrize("kind", ["truncate", "reset"])
def test_reads_cut_every_8_mib_resume_with_range(source_registry, target_registry, tmp_path, kind):
    """A connection closed after 8 MiB (``truncate``) hands over every byte before the cut. One
    reset (RST) also drops what waited in the client's socket buffer, unread (about 1 MiB a
    cut on loopback): those bytes come again, so the bound is looser there."""
    digest = _big(source_registry.host)
    with FaultProxy(source_registry.host) as proxy:
        plan = _plan(tmp_path, f"{target_registry.host}/mirror", proxy.host)
        proxy.add(Fault(kind, r"/blobs/sha256:", FOREVER, method="GET", after_bytes=CUT))
        before = proxy.bytes_sent
        report = _apply(plan)
        sent = proxy.bytes_sent - before
    assert raw_digest(_target_ref(target_registry, proxy.host)) == digest
    print(f"source bytes for a 64 MiB layer cut ({kind}) every 8 MiB: {sent / SIZE:.3f}x")
    assert sent <= (1.1 if kind == "truncate" else 1.5) * SIZE
    resumes = report["images"][0]["resumes"]
    assert resumes and resumes[0]["count"] >= 7


def test_a_source_that_ignores_ranges_is_read_again_from_its_start(
    source_registry, target_registry, tmp_path
):
    pushed = push_image(
        source_registry.host,
        "team/big",
        "1.0",
        platforms=[("linux", "amd64")],
        index=False,
        layers=[SIZE],
    )
    digest, layer = pushed.digest, pushed.blobs[-1].digest
    with FaultProxy(source_registry.host) as proxy:
        plan = _plan(tmp_path, f"{target_registry.host}/mirror", proxy.host)
        proxy.ranges = False
        proxy.add(Fault("truncate", f"/blobs/{layer}", 1, method="GET", after_bytes=CUT))
        report = _apply(plan)
        layer_gets = [r for r in proxy.requests if r.method == "GET" and r.status == 200]
    assert raw_digest(_target_ref(target_registry, proxy.host)) == digest
    assert report["images"][0]["resumes"][0]["count"] == 1
    assert len(layer_gets) >= 2


def test_writes_cut_every_8_mib_resume_from_the_registry_offset(
    source_registry, target_registry, tmp_path
):
    digest = _big(source_registry.host)
    with FaultProxy(target_registry.host) as proxy:
        plan = _plan(tmp_path, f"{proxy.host}/mirror", source_registry.host)
        proxy.add(Fault("cut_request", r"/blobs/uploads/", FOREVER, after_bytes=CUT))
        before = proxy.bytes_received
        report = _apply(plan)
        sent = proxy.bytes_received - before
        patches = [r for r in proxy.requests if r.method == "PATCH"]
    assert raw_digest(_target_ref(target_registry, source_registry.host)) == digest
    print(f"target bytes for a 64 MiB layer cut every 8 MiB: {sent / SIZE:.3f}x")
    assert sent <= 1.1 * SIZE
    assert patches, "the blob did not go up in chunks"
    assert report["images"][0]["resumes"][0]["count"] >= 3


@pytest.mark.parametrize("status", [416, 404])
def test_a_registry_refusing_chunks_gets_a_monolithic_upload(
    source_registry, target_registry, tmp_path, status
):
    digest = _big(source_registry.host)
    with FaultProxy(target_registry.host) as proxy:
        plan = _plan(tmp_path, f"{proxy.host}/mirror", source_registry.host)
        proxy.add(Fault("status", r"/blobs/uploads/", FOREVER, method="PATCH", status=status))
        _apply(plan)
        puts = [r for r in proxy.requests if r.method == "PUT" and "/blobs/uploads/" in r.path]
    assert raw_digest(_target_ref(target_registry, source_registry.host)) == digest
    assert any(r.received == SIZE and r.status == 201 for r in puts), puts


def test_a_session_lost_to_a_cut_chunk_gets_a_monolithic_upload(
    source_registry, target_registry, tmp_path
):
    """The distribution registry keeps the bytes of a PATCH cut short, and then refuses the
    session (``404 BLOB_UPLOAD_INVALID``: its state says another offset), as ACR does: the blob
    goes up whole in a fresh session."""
    digest = _big(source_registry.host)
    with FaultProxy(target_registry.host) as proxy:
        plan = _plan(tmp_path, f"{proxy.host}/mirror", source_registry.host)
        cut = Fault("cut_request", r"/blobs/uploads/", 1, "PATCH", after_bytes=MIB, buffered=False)
        proxy.add(cut)
        _apply(plan)
        puts = [r for r in proxy.requests if r.method == "PUT" and "/blobs/uploads/" in r.path]
    assert raw_digest(_target_ref(target_registry, source_registry.host)) == digest
    assert any(r.received == SIZE and r.status == 201 for r in puts), puts


def _kill_when(process, proxy: FaultProxy, counter: str, threshold: int) -> int:  # type: ignore[no-untyped-def]
    """SIGKILL ``process`` once ``proxy``'s ``counter`` passes ``threshold``; its value then."""
    deadline = time.monotonic() + 120
    while getattr(proxy, counter) < threshold:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the transfer never got that far"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    while True:  # what was on its way when the process died is in
        seen = getattr(proxy, counter)
        time.sleep(0.3)
        if getattr(proxy, counter) == seen:
            return int(seen)


def test_sigkill_mid_upload_then_rerun_sends_only_the_rest(
    source_registry, target_registry, tmp_path
):
    digest = _big(source_registry.host)
    kill_at = random.randint(20, 44) * MIB
    with FaultProxy(target_registry.host) as proxy:
        plan = _plan(tmp_path, f"{proxy.host}/mirror", source_registry.host)
        proxy.add(Fault("throttle", r"/blobs/uploads/", FOREVER, rate=24 * MIB))
        process = _imagesync("apply", str(plan), env=dict(os.environ))
        killed_at = _kill_when(process, proxy, "bytes_received", kill_at)
        # What the registry took (and acknowledged) before the kill.
        landed = sum(r.received for r in proxy.requests if r.method == "PATCH" and r.status == 202)
        proxy.clear()
        before = proxy.bytes_received
        report = _apply(plan)
        again = proxy.bytes_received - before
    assert raw_digest(_target_ref(target_registry, source_registry.host)) == digest
    print(
        f"killed after {killed_at / MIB:.0f} MiB sent, {landed / MIB:.0f} MiB landed; "
        f"the re-run sent {again / MIB:.0f} MiB"
    )
    # The chunk in flight at the kill (at most 4 MiB) is sent again; what landed is not.
    assert landed >= killed_at - 2 * 4 * MIB
    assert again <= SIZE - landed + 64 * 1024
    assert report["images"][0]["resumes"][0]["bytes_resumed"] == landed


def test_killed_apply_into_a_layout_continues_its_temporary_file(source_registry, tmp_path):
    pushed = push_image(
        source_registry.host,
        "team/big",
        "1.0",
        platforms=[("linux", "amd64")],
        index=False,
        layers=[SIZE],
    )
    layer = pushed.blobs[-1].digest  # the config, then the layer
    out = tmp_path / "tree"
    kill_at = random.randint(16, 48) * MIB
    with FaultProxy(source_registry.host) as proxy:
        images = images_file(
            tmp_path, f"oci:{out}", f'- source: "{proxy.host}/team/big:1.0"\n  amd64Only: true\n'
        )
        plan = tmp_path / "plan.json"
        code, stdout, stderr = run("plan", "-i", str(images), "-o", str(plan))
        assert code == 0, stdout + stderr
        proxy.add(Fault("throttle", r"/blobs/sha256:", FOREVER, method="GET", rate=24 * MIB))
        process = _imagesync("apply", str(plan), env=dict(os.environ))
        killed_at = _kill_when(process, proxy, "bytes_sent", kill_at)
        layout = next(p.parent for p in out.rglob("oci-layout"))
        partial = partial_path(layout, layer)
        assert partial.exists() and partial.stat().st_size > 0
        held = partial.stat().st_size
        proxy.clear()
        before = proxy.bytes_sent
        report = _apply(plan)
        again = proxy.bytes_sent - before
    print(
        f"killed after {killed_at / MIB:.0f} MiB, {held / MIB:.0f} MiB on disk; "
        f"re-run read {again / MIB:.0f} MiB"
    )
    assert again <= SIZE - held + MIB
    assert not partial.exists()
    algorithm, _, hex_digest = layer.partition(":")
    assert (layout / "blobs" / algorithm / hex_digest).stat().st_size == SIZE
    assert report["images"][0]["resumes"][0]["bytes_resumed"] == held
