"""Reliability (design.md §5 and §8): apply under injected faults, under SIGKILL, and a soak.

Every test runs real registries (the distribution registry) behind the fault-injecting proxy
of ``tests.harness.faultproxy``: 503 bursts, 429 with Retry-After, connections reset in the
middle of a blob, truncated and corrupted bodies. What landed in the target is checked
independently of imagesync: with skopeo, and by walking the target over plain HTTP.

Backoff is shortened with ``IMAGESYNC_RETRY_BASE_DELAY`` (read by ``imagesync.stores.connection``),
so that retries cost milliseconds here instead of the policy's half second and up.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from imagesync.cli import main
from imagesync.errors import ConfigError
from imagesync.plan.document import checksum
from imagesync.stores.connection import BASE_DELAY_ENV, retry_base_delay
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import copy_to_dir, inspect_raw

pytestmark = pytest.mark.registry

FOREVER = 10**9
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


# -- helpers -------------------------------------------------------------------------------


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


# The fault proxy serves from threads; when a client drops a connection (a reset, a killed
# process), socketserver prints the error to sys.stderr, which CliRunner is capturing.
_PROXY_ERROR = re.compile(
    r"-{40}\nException occurred during processing of request from .*?\n-{40}\n", re.DOTALL
)


def no_traceback(result: Result) -> None:
    """Nothing escaped imagesync: no exception, no traceback in its output."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{result.output}"
    )
    output = _PROXY_ERROR.sub("", result.output)
    at = output.find("Traceback")
    assert at < 0, output[max(0, at - 300) : at + 3000]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo_digest(reference: str) -> str:
    """The digest of the manifest bytes skopeo reads: what a pulling client sees."""
    return sha256(inspect_raw(reference))


@dataclass
class Proxied:
    """A source and a target registry, each behind its own fault proxy.

    Images files name the proxies, so every request imagesync sends passes a proxy; checks
    go to the registries directly, past the faults.
    """

    source: RegistryServer
    target: RegistryServer
    sproxy: FaultProxy
    tproxy: FaultProxy
    tmp: Path

    def push(self, count: int, **options: Any) -> list[str]:
        """Push ``count`` images team/app0..; returns their digests."""
        return [
            push_image(self.source.host, f"team/app{i}", "1.0", seed=1000 + i, **options).digest
            for i in range(count)
        ]

    def images_file(self, names: list[str], name: str = "images.yaml") -> Path:
        lines = [f"target: {self.tproxy.host}/mirror", "images:"]
        lines += [f'- source: "{self.sproxy.host}/team/{n}:1.0"' for n in names]
        path = self.tmp / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def plan(self, names: list[str], name: str = "plan.json") -> Path:
        out = self.tmp / name
        result = run("plan", "-i", str(self.images_file(names)), "-o", str(out))
        assert result.exit_code == 0, result.output
        return out

    def target_path(self, name: str) -> str:
        """The repository path of team/NAME in the target (the seed's mapping)."""
        return f"mirror/{self.sproxy.host.replace(':', '-')}/team/{name}"

    def real(self, name: str, tag: str = "1.0") -> str:
        """team/NAME:TAG in the target, addressed past the proxy."""
        return f"{self.target.host}/{self.target_path(name)}:{tag}"

    def target_has_tag(self, name: str) -> bool:
        url = f"{self.target.url}/v2/{self.target_path(name)}/manifests/1.0"
        return requests.head(url, headers={"Accept": ACCEPT}, timeout=10).status_code == 200


@pytest.fixture
def proxied(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Proxied]:
    monkeypatch.setenv(BASE_DELAY_ENV, "0.01")
    monkeypatch.setenv("NO_COLOR", "1")
    with FaultProxy(source_registry.host) as sproxy, FaultProxy(target_registry.host) as tproxy:
        yield Proxied(source_registry, target_registry, sproxy, tproxy, tmp_path)


def incomplete_parts(base: str, repository: str, reference: str) -> list[str]:
    """What the image at ``repository:reference`` lacks in the registry at ``base``: every
    manifest must be there and hash to its digest, every blob must be linked to the
    repository. Plain HTTP, no imagesync code: an independent walk."""
    missing: list[str] = []
    response = requests.get(
        f"{base}/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}, timeout=10
    )
    if response.status_code != 200:
        return [f"manifest {reference}: {response.status_code}"]
    if reference.startswith("sha256:") and sha256(response.content) != reference:
        missing.append(f"manifest {reference} hashes to {sha256(response.content)}")
    document = response.json()
    for child in document.get("manifests") or []:
        missing += incomplete_parts(base, repository, child["digest"])
    for blob in [document.get("config"), *(document.get("layers") or [])]:
        if blob is None:
            continue
        head = requests.head(f"{base}/v2/{repository}/blobs/{blob['digest']}", timeout=10)
        if head.status_code != 200:
            missing.append(f"blob {blob['digest']}: {head.status_code}")
    return missing


def apply_json(plan: Path, *extra: str) -> tuple[Result, dict[str, Any]]:
    result = run("apply", str(plan), "--format", "json", *extra)
    no_traceback(result)
    return result, json.loads(result.stdout)


# -- the retry base delay ------------------------------------------------------------------


def test_retry_base_delay_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BASE_DELAY_ENV, raising=False)
    assert retry_base_delay() == 0.5
    monkeypatch.setenv(BASE_DELAY_ENV, "0.05")
    assert retry_base_delay() == 0.05
    for bad in ("soon", "-1", "nan", "1e9"):
        monkeypatch.setenv(BASE_DELAY_ENV, bad)
        with pytest.raises(ConfigError, match=BASE_DELAY_ENV):
            retry_base_delay()


def test_a_bad_retry_base_delay_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BASE_DELAY_ENV, "fast")
    images = tmp_path / "images.yaml"
    images.write_text('target: 127.0.0.1:9/mirror\nimages:\n- source: "busybox:1.36"\n')
    result = run("plan", "-i", str(images))
    no_traceback(result)
    assert result.exit_code == 1
    assert f"{BASE_DELAY_ENV}='fast' is not a number of seconds" in result.stderr


# -- transient faults: retried, and the result is exact ------------------------------------

TRANSIENT = {
    "503 bursts on source manifests": (
        "source",
        [Fault("status", r"/manifests/", count=4, method="GET")],
    ),
    "503 bursts on target writes": (
        "target",
        [
            Fault("status", r"/blobs/uploads/$", count=3, method="POST"),
            Fault("status", r"/manifests/", count=3, method="PUT"),
            # The look at a new repository's tags (which spares a HEAD per blob).
            Fault("status", r"/tags/list", count=3, method="GET"),
        ],
    ),
    "503 on streamed uploads": (
        "target",
        [Fault("status", r"/blobs/uploads/.", count=3, method="PUT", status=503)],
    ),
    "429 with Retry-After": (
        "source",
        [Fault("status", r"/blobs/sha256:", count=2, method="GET", status=429, retry_after="1")],
    ),
    "connection resets mid-blob": (
        "source",
        [Fault("reset", r"/blobs/sha256:", count=4, method="GET", after_bytes=100)],
    ),
    "truncated blob bodies": (
        "source",
        [Fault("truncate", r"/blobs/sha256:", count=4, method="GET", after_bytes=100)],
    ),
    "truncated and reset manifests": (
        "source",
        [
            Fault("truncate", r"/manifests/sha256:", count=2, method="GET", after_bytes=40),
            Fault("reset", r"/manifests/sha256:", count=2, method="GET", after_bytes=10),
        ],
    ),
    "slow answers": (
        "target",
        [Fault("delay", r"/manifests/", count=4, method="HEAD", seconds=0.3)],
    ),
}


@pytest.mark.parametrize("case", list(TRANSIENT))
def test_transient_faults_are_retried_and_every_digest_is_right(
    proxied: Proxied, case: str
) -> None:
    side, faults = TRANSIENT[case]
    digests = proxied.push(3, layers=1, layer_size=4096)
    names = [f"app{i}" for i in range(3)]
    plan = proxied.plan(names)
    proxy = proxied.sproxy if side == "source" else proxied.tproxy
    for fault in faults:
        proxy.add(fault)
    started = time.monotonic()
    result, report = apply_json(plan, "--retries", "5", "--debug")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert [i["outcome"] for i in report["images"]] == ["created"] * 3
    for fault in faults:
        assert fault.hits == fault.count, f"{fault} was not exercised"
    if any(f.kind != "delay" for f in faults):
        assert "retry 1" in result.stderr  # --debug logs every retry
    for name, digest in zip(names, digests, strict=True):
        assert skopeo_digest(proxied.real(name)) == digest
    if case == "429 with Retry-After":
        assert elapsed >= 1.0, "Retry-After: 1 was not waited for"
    assert elapsed < 30


def test_faults_that_never_clear_fail_their_images_and_the_rest_complete(
    proxied: Proxied,
) -> None:
    digests = proxied.push(4, layers=1, layer_size=4096)
    names = [f"app{i}" for i in range(4)]
    plan = proxied.plan(names)
    seen = len(proxied.sproxy.requests)
    # app1: the source answers 503 to its manifests forever; app2: its blob downloads are
    # reset midway forever; app3: the target refuses its tag forever.
    proxied.sproxy.add(Fault("status", r"/team/app1/manifests/", count=FOREVER, method="GET"))
    proxied.sproxy.add(
        Fault("reset", r"/team/app2/blobs/", count=FOREVER, method="GET", after_bytes=100)
    )
    proxied.tproxy.add(
        Fault("status", r"/team/app3/manifests/1\.0$", count=FOREVER, method="PUT", status=502)
    )
    started = time.monotonic()
    result, report = apply_json(plan, "--retries", "3")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert report["failed"] is True
    images = {i["target"].rsplit("/", 1)[-1]: i for i in report["images"]}
    assert [images[f"{n}:1.0"]["outcome"] for n in names] == [
        "created",
        "failed",
        "failed",
        "failed",
    ]
    assert "503" in images["app1:1.0"]["message"]
    assert "GET manifest" in images["app1:1.0"]["message"]
    assert "broke off" in images["app2:1.0"]["message"]
    assert "502" in images["app3:1.0"]["message"]
    assert skopeo_digest(proxied.real("app0")) == digests[0]
    for name in names[1:]:
        assert not proxied.target_has_tag(name), f"{name} was tagged"
    # Each request is tried --retries times, not --retries squared.
    during = Counter(
        (r.method, r.path) for r in proxied.sproxy.requests[seen:] if "/app2/blobs/" in r.path
    )
    assert during and max(during.values()) <= 3, during
    assert elapsed < 20
    # The text report says which images failed and why.
    text = run("apply", str(plan), "--retries", "2")
    no_traceback(text)
    assert text.exit_code == 1
    assert "x failed" in text.stdout and "app2:1.0" in text.stdout
    assert "Apply: 0 created, 1 skipped, 0 conflicts, 3 failed." in text.stdout


def test_a_corrupted_blob_is_detected_and_its_tag_never_written(proxied: Proxied) -> None:
    digests = proxied.push(3, layers=2, layer_size=8192)
    names = ["app0", "app1", "app2"]
    plan = proxied.plan(names)
    # Every download of app1's blobs, retries included, has its first byte flipped; every
    # read of app2's manifests by digest too.
    proxied.sproxy.add(Fault("corrupt", r"/team/app1/blobs/", count=FOREVER, method="GET"))
    proxied.sproxy.add(
        Fault("corrupt", r"/team/app2/manifests/sha256:", count=FOREVER, method="GET")
    )
    result, report = apply_json(plan, "--retries", "2")
    assert result.exit_code == 1
    outcomes = [i["outcome"] for i in report["images"]]
    assert outcomes == ["created", "failed", "failed"]
    assert "arrived with digest" in report["images"][1]["message"]
    assert "hashes to" in report["images"][2]["message"]
    assert skopeo_digest(proxied.real("app0")) == digests[0]
    for name in ("app1", "app2"):
        assert not proxied.target_has_tag(name)
    # Not one corrupt blob was stored: the upload was aborted before its last byte.
    source_manifest = requests.get(
        f"{proxied.source.url}/v2/team/app1/manifests/{digests[1]}",
        headers={"Accept": ACCEPT},
        timeout=10,
    ).json()
    for child in source_manifest["manifests"]:
        image = requests.get(
            f"{proxied.source.url}/v2/team/app1/manifests/{child['digest']}",
            headers={"Accept": ACCEPT},
            timeout=10,
        ).json()
        for blob in [image["config"], *image["layers"]]:
            url = f"{proxied.target.url}/v2/{proxied.target_path('app1')}/blobs/{blob['digest']}"
            assert requests.head(url, timeout=10).status_code == 404
    # Once the corruption stops, the same plan completes.
    proxied.sproxy.clear()
    result, report = apply_json(plan)
    assert result.exit_code == 0, result.output
    for name, digest in zip(names, digests, strict=True):
        assert skopeo_digest(proxied.real(name)) == digest


def test_sigterm_ends_a_long_retry_after_wait_at_once(proxied: Proxied) -> None:
    """A registry asks to come back in 30 s; CI cancels the job meanwhile: apply stops now,
    reports, and tags nothing."""
    proxied.push(2, layers=1, layer_size=1024)
    plan = proxied.plan(["app0", "app1"])
    proxied.sproxy.add(
        Fault("status", r"/manifests/", count=FOREVER, method="GET", status=429, retry_after="30")
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "imagesync", "apply", str(plan)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    deadline = time.monotonic() + 30
    while not any(r.status == 429 for r in proxied.sproxy.requests):
        assert time.monotonic() < deadline, "apply never asked for a manifest"
        time.sleep(0.02)
    time.sleep(0.2)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    stopped_in = time.monotonic() - signalled
    assert process.returncode == 1, stderr.decode()
    assert stopped_in < 10, f"apply took {stopped_in:.1f} s to stop"
    assert b"Interrupted" in stdout and b"Traceback" not in stderr
    assert not proxied.target_has_tag("app0") and not proxied.target_has_tag("app1")


# -- SIGKILL at random points --------------------------------------------------------------

KILL_RUNS = 10
KILL_IMAGES = 20


def _retargeted(plan: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The same plan aimed at another prefix: a fresh, empty place for each run."""
    document = json.loads(json.dumps(plan).replace(f"/{old}/", f"/{new}/"))
    document["target_prefix"] = document["target_prefix"].replace(f"/{old}", f"/{new}")
    document["checksum"] = checksum(document)
    return document


def test_sigkill_at_random_points_never_leaves_an_incomplete_tag(proxied: Proxied) -> None:
    """An apply of 20 images is SIGKILLed at a random moment, ten times over. Whatever the
    moment, every tag in the target names a complete image (every manifest and blob there,
    and skopeo copies it out), and the next apply completes every image."""
    seed = int(os.environ.get("IMAGESYNC_TEST_SEED", random.randrange(1 << 30)))
    chance = random.Random(seed)
    names = [f"app{i}" for i in range(KILL_IMAGES)]
    pushed = proxied.push(KILL_IMAGES, platforms=[("linux", "amd64")], layers=1, layer_size=2048)
    digests = dict(zip(names, pushed, strict=True))
    base_plan = json.loads(proxied.plan(names).read_text())
    env = {**os.environ, "NO_COLOR": "1"}
    stats: list[tuple[float, int, int]] = []
    for number in range(KILL_RUNS):
        prefix = f"run{number}"
        plan = proxied.tmp / f"{prefix}.json"
        plan.write_text(json.dumps(_retargeted(base_plan, "mirror", prefix)))
        # 10 ms per target request spreads the apply over a second or two.
        slow = proxied.tproxy.add(Fault("delay", r".", count=FOREVER, seconds=0.01))
        seen = len(proxied.tproxy.requests)
        process = subprocess.Popen(
            [sys.executable, "-m", "imagesync", "apply", str(plan), "--parallelism", "4"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        # The random moment is counted from the first write: the start-up of Python and the
        # reads before it are not where an interrupted apply can do harm.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            r.method in ("PUT", "POST") for r in proxied.tproxy.requests[seen:]
        ):
            time.sleep(0.005)
        delay = chance.uniform(0.05, 1.5)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        writes = sum(1 for r in proxied.tproxy.requests[seen:] if r.method in ("PUT", "POST"))
        proxied.tproxy.faults.remove(slow)

        tagged = []
        for name in names:
            repository = proxied.target_path(name).replace("mirror/", f"{prefix}/", 1)
            head = requests.head(
                f"{proxied.target.url}/v2/{repository}/manifests/1.0",
                headers={"Accept": ACCEPT},
                timeout=10,
            )
            if head.status_code == 200:
                tagged.append(name)
                problems = incomplete_parts(proxied.target.url, repository, "1.0")
                assert not problems, f"run {number} (seed {seed}): {name} is tagged: {problems}"
        stats.append((delay, writes, len(tagged)))
        # skopeo, another implementation, copies out up to three of them.
        for name in tagged[-3:]:
            repository = proxied.target_path(name).replace("mirror/", f"{prefix}/", 1)
            copy_to_dir(f"{proxied.target.host}/{repository}:1.0", proxied.tmp / f"{prefix}-{name}")

        result, report = apply_json(plan)
        assert result.exit_code == 0, f"run {number} (seed {seed}): {result.output}"
        assert {i["outcome"] for i in report["images"]} <= {"created", "skipped"}
        for name in names:
            repository = proxied.target_path(name).replace("mirror/", f"{prefix}/", 1)
            raw = requests.get(
                f"{proxied.target.url}/v2/{repository}/manifests/1.0",
                headers={"Accept": ACCEPT},
                timeout=10,
            ).content
            assert sha256(raw) == digests[name]
    print(f"seed {seed}; (kill delay, target writes before the kill, tags): {stats}")
    # The kills landed while work was being done: after the first write, before the last tag.
    assert all(writes for _, writes, _ in stats), stats
    assert sum(1 for _, _, tags in stats if tags < KILL_IMAGES) >= KILL_RUNS // 2, stats


# -- a soak --------------------------------------------------------------------------------


class RandomFaults(FaultProxy):
    """A FaultProxy that, besides its listed faults, fails a share of all requests at random:
    a 5xx answer, or (for GETs) a connection reset after a few bytes of the body."""

    def __init__(self, upstream: str, rate: float, seed: int) -> None:
        super().__init__(upstream)
        self.rate = rate
        self.active = False
        self.injected: Counter[str] = Counter()
        self._chance = random.Random(seed)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        listed = super()._take_fault(method, path)
        if listed is not None or not self.active:
            return listed
        with self._lock:
            roll = self._chance.random()
            if roll >= self.rate:
                return None
            if method == "GET" and roll < self.rate / 2:
                after = self._chance.randrange(0, 200)
                fault = Fault("reset", ".", count=1, after_bytes=after)
            else:
                status = self._chance.choice((500, 502, 503, 504))
                fault = Fault("status", ".", count=1, status=status)
            self.injected[f"{method} {fault.kind}"] += 1
            return fault


SOAK_IMAGES = 200


def test_soak_200_images_with_random_transient_failures(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~5% of all requests, on both sides, fail at random (5xx or a reset mid-body); the
    apply completes every one of 200 images with its exact digest."""
    monkeypatch.setenv(BASE_DELAY_ENV, "0.01")
    seed = int(os.environ.get("IMAGESYNC_TEST_SEED", random.randrange(1 << 30)))
    started = time.monotonic()
    digests = [
        push_image(
            source_registry.host,
            f"soak/app{i}",
            "1.0",
            platforms=[("linux", "amd64")],
            layers=1,
            layer_size=512,
            seed=5000 + i,
        ).digest
        for i in range(SOAK_IMAGES)
    ]
    with (
        RandomFaults(source_registry.host, 0.05, seed) as sproxy,
        RandomFaults(target_registry.host, 0.05, seed + 1) as tproxy,
    ):
        images = tmp_path / "images.yaml"
        lines = [f"target: {tproxy.host}/mirror", "images:"]
        lines += [f'- source: "{sproxy.host}/soak/app{i}:1.0"' for i in range(SOAK_IMAGES)]
        images.write_text("\n".join(lines) + "\n")
        plan = tmp_path / "plan.json"
        planned = run("plan", "-i", str(images), "-o", str(plan), "--no-signatures")
        assert planned.exit_code == 0, planned.output
        sproxy.active = tproxy.active = True
        result, report = apply_json(plan, "--parallelism", "8")
        sproxy.active = tproxy.active = False
        injected = sproxy.injected + tproxy.injected
        total = len(sproxy.requests) + len(tproxy.requests)
    elapsed = time.monotonic() - started
    print(f"seed {seed}: {sum(injected.values())} faults in {total} requests: {dict(injected)}")
    assert result.exit_code == 0, result.output
    assert report["summary"]["created"] == SOAK_IMAGES
    assert sum(injected.values()) >= 50, injected
    prefix = f"mirror/{sproxy.host.replace(':', '-')}/soak"
    with requests.Session() as session:
        for i, digest in enumerate(digests):
            raw = session.get(
                f"{target_registry.url}/v2/{prefix}/app{i}/manifests/1.0",
                headers={"Accept": ACCEPT},
                timeout=10,
            ).content
            assert sha256(raw) == digest, f"app{i}"
    for i in random.Random(seed).sample(range(SOAK_IMAGES), 5):
        assert skopeo_digest(f"{target_registry.host}/{prefix}/app{i}:1.0") == digests[i]
        copy_to_dir(f"{target_registry.host}/{prefix}/app{i}:1.0", tmp_path / f"copy{i}")
    assert elapsed < 90, f"the soak took {elapsed:.0f} s"
