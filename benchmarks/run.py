#!/usr/bin/env python3
"""imagesync against skopeo sync, on the same generated images, on two local registries.

    python benchmarks/run.py [--runs 3] [--parallelism 16] [--profile]
        [--scenarios S1,S2,S3,S4,scale,S5,S6,S7,S8,S9,S10,help,plan-scale]

Every scenario starts its own source registry (the test harness's real ``docker-registry``),
pushes generated images into it (not measured), then times each tool copying them into a
target registry. Cold scenarios get a brand-new, empty target registry for every single run;
warm ones fill the target once (not measured) and time the re-runs. Tools alternate run by
run, so drift in the machine's load hits them alike. After every run the target is checked:
every image's tag must hold the source digest (HEAD), and one sample is also read with
``skopeo inspect --raw`` and hashed.

Wall time is measured around the whole command (process start-up included: that is what a
user waits for); peak RSS and CPU time are the command's own, from ``/usr/bin/time -f``
(or, without GNU time, ``VmHWM`` polled from /proc). The table goes to stdout and to
``benchmarks/results/latest.md``; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import inspect
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.latency import LatencyProxy  # noqa: E402
from tests.harness.images import Pushed, push_image  # noqa: E402
from tests.harness.registry import RegistryServer  # noqa: E402

SKOPEO = os.environ.get("IMAGESYNC_BENCH_SKOPEO", "/usr/bin/skopeo")
TIME = shutil.which("/usr/bin/time")
RESULTS = ROOT / "benchmarks" / "results"
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TWO_PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))
TAG = "v1"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


# -- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What the source holds: ``count`` images, each an index over ``platforms``, each
    platform with ``base_layers`` (sizes) that every image shares, then ``layers`` of its own."""

    count: int
    platforms: tuple[tuple[str, str], ...] = TWO_PLATFORMS
    layers: int = 2
    layer_size: int = 1024
    base_layers: tuple[int, ...] = ()

    def describe(self) -> str:
        own = f"{_plural(self.layers, 'layer')} x {_size(self.layer_size)}"
        if self.base_layers:
            base = " + ".join(_size(size) for size in self.base_layers)
            own = f"shared base {base} + own {own}"
        return (
            f"{_plural(self.count, 'image')} x {_plural(len(self.platforms), 'platform')} x {own}"
        )


def _size(count: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count:g} B"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    shape: Shape
    warm: bool
    # Targets: imagesync/skopeo wall-time ratio; imagesync's peak RSS in MB; imagesync's wall
    # time over bytes / bandwidth (capped links only); imagesync's wall time in seconds (the
    # figure published before, which a change must not make slower).
    max_ratio: float | None = None
    max_rss_mb: float | None = None
    max_link_ratio: float | None = None
    max_wall: float | None = None
    counts: tuple[int, ...] = ()  # scale only: the image counts to time
    # Also time imagesync --no-signatures: skopeo sync copies the listed tags only, so that
    # is the like-for-like comparison; plain imagesync also discovers signatures.
    no_signatures_too: bool = False
    # Both registries this far away (round trip, ms), through benchmarks/latency.py, each
    # behind a link of this many MB/s (10^6 bytes) in each direction (0: uncapped).
    latency_ms: int = 0
    rate_mb: float = 0
    # Count, from the source registry's access log, how often each blob that several images
    # share is read: a tool that copies it once per run reads it once.
    count_shared_reads: bool = False
    # Both registries speak TLS (a throw-away CA each tool is given), as registries on a
    # network do: a client that opens connections anew pays a handshake for each.
    tls: bool = False

    @property
    def network(self) -> str:
        if not self.latency_ms:
            return "loopback"
        rate = f", {self.rate_mb:g} MB/s" if self.rate_mb else ""
        tls = ", TLS" if self.tls else ""
        return f"{self.latency_ms} ms{rate}{tls}"


SMALL = Shape(200)
BATCH = Shape(16, layers=3, layer_size=2 * MIB)
# Issue 15's numbers: 12 images that share two 1.5 MiB base layers per platform and add one
# 200 KiB layer of their own; S1's shape (2 platforms x 3 layers) for 12 images, 108 MiB.
SHARED_BASE = Shape(12, layers=1, layer_size=200 * KIB, base_layers=(1536 * KIB, 1536 * KIB))
LINK_BATCH = Shape(12, layers=3, layer_size=1536 * KIB)
# README, Performance, the run of 2026-11-27: what S1-S3 must not get slower than.
PUBLISHED = {"S1": 2.74, "S2": 1.76, "S3": 15.69}
SCENARIOS = {
    "S1": Scenario(
        "S1",
        "cold",
        BATCH,
        warm=False,
        max_ratio=0.6,
        max_wall=PUBLISHED["S1"],
        no_signatures_too=True,
    ),
    "S2": Scenario(
        "S2",
        "warm, nothing to do",
        SMALL,
        warm=True,
        max_ratio=0.15,
        max_wall=PUBLISHED["S2"],
        no_signatures_too=True,
    ),
    "S3": Scenario(
        "S3", "cold, many small", SMALL, warm=False, max_ratio=0.4, max_wall=PUBLISHED["S3"]
    ),
    "S4": Scenario(
        "S4",
        "one 1 GiB layer",
        Shape(1, platforms=(("linux", "amd64"),), layers=1, layer_size=GIB),
        warm=False,
        max_rss_mb=150,
    ),
    "scale": Scenario("scale", "warm, growing", Shape(400), warm=True, counts=(50, 100, 200, 400)),
    # Not in issue 8's targets: what the same work costs when the registries are on a network.
    "S5": Scenario("S5", "warm, registries 10 ms away", SMALL, warm=True, latency_ms=10),
    "S6": Scenario(
        "S6",
        "cold, registries 10 ms away",
        BATCH,
        warm=False,
        latency_ms=10,
    ),
    # Issue 15: blobs cross the wire once, the link stays full.
    "S7": Scenario(
        "S7",
        "cold, shared base layers",
        SHARED_BASE,
        warm=False,
        max_ratio=0.6,
        count_shared_reads=True,
    ),
    "S8": Scenario(
        "S8",
        "cold, registries 20 ms / 40 MB/s away",
        LINK_BATCH,
        warm=False,
        max_ratio=0.5,
        max_link_ratio=1.3,
        latency_ms=20,
        rate_mb=40,
    ),
    "S9": Scenario(
        "S9",
        "warm, registries 20 ms / 40 MB/s away",
        Shape(100),
        warm=True,
        max_ratio=0.1,
        latency_ms=20,
        rate_mb=40,
    ),
    # S9 over TLS: the daily no-op run as it meets real registries.
    "S10": Scenario(
        "S10",
        "warm, registries 20 ms / 40 MB/s away, TLS",
        Shape(100),
        warm=True,
        latency_ms=20,
        rate_mb=40,
        tls=True,
    ),
}
# Not a copy: `imagesync --help` against `python -c 'import click, yaml'` in the same venv.
HELP = "help"
HELP_RUNS = 7
MAX_HELP_RATIO = 2.0
# Issue 20, not a copy either: `imagesync plan` of 1,000 and 2,000 warm images (one shard's
# worth of a large file) and `imagesync validate` of 10,000 entries, imagesync alone.
PLAN_SCALE = "plan-scale"
PLAN_SCALE_SHAPE = Shape(2000, layers=1)
PLAN_COUNTS = (1000, 2000)
MAX_PLAN_RSS_MB = 200
MAX_PLAN_GROWTH = 1.2  # time(2,000) over 2 x time(1,000)
VALIDATE_ENTRIES = 10_000
MAX_VALIDATE_SECONDS = 2.0


class Registry(Protocol):
    """What a run needs of a registry: where tools reach it, and its config file (which
    finds its process, for its CPU time)."""

    @property
    def host(self) -> str: ...

    @property
    def config_file(self) -> Path: ...

    @property
    def ca_file(self) -> Path | None:
        """The CA its TLS certificate is signed by; None for plain HTTP."""

    @property
    def cert_dir(self) -> Path | None:
        """A directory holding only ``ca_file`` (skopeo's ``--cert-dir``)."""


@dataclass(frozen=True)
class Distant:
    """A registry reached through a LatencyProxy."""

    host: str
    config_file: Path
    proxy: LatencyProxy
    ca_file: Path | None = None
    cert_dir: Path | None = None


@contextmanager
def far(server: RegistryServer, scenario: Scenario) -> Iterator[Registry]:
    """``server`` itself, or ``server`` behind a relay: the scenario's round trip away, behind
    a link of its rate."""
    if not scenario.latency_ms:
        yield server
        return
    rate = scenario.rate_mb * 1e6 or None
    with LatencyProxy(server.host, scenario.latency_ms / 1000, rate) as proxy:
        yield Distant(proxy.host, server.config_file, proxy, server.ca_file, server.cert_dir)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    rss_kb: int
    cpu: float | None
    returncode: int
    stdout: str
    stderr: str
    registry_cpu: float = 0.0  # both registries' CPU seconds during the run
    relay_cpu: float | None = None  # the latency relays' CPU seconds during the run
    shared_reads: int | None = None  # the most reads of one shared blob from the source


def measure(command: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run ``command`` to its end: wall time, its own peak RSS (KiB) and CPU time (s).

    GNU time (``/usr/bin/time``, Debian package ``time``) reports them; getrusage or wait4
    here would not do: Linux carries a process's peak RSS across exec, so a child forked
    from this (big) benchmark process would report our own peak. Without GNU time, VmHWM is
    polled from /proc (exec resets it), and CPU time is not reported.
    """
    with tempfile.TemporaryDirectory() as scratch:
        out, err, usage = (Path(scratch) / name for name in ("out", "err", "usage"))
        prefix = [TIME, "-f", "%M %U %S", "-o", str(usage)] if TIME else []
        with out.open("wb") as stdout, err.open("wb") as stderr:
            started = time.perf_counter()
            process = subprocess.Popen(
                [*prefix, *command],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            peak = 0
            while TIME is None and process.poll() is None:
                peak = max(peak, _vm_hwm(process.pid))
                time.sleep(0.02)
            returncode = process.wait()
            wall = time.perf_counter() - started
        cpu = None
        if TIME:
            # GNU time writes "Command exited with non-zero status N" before the numbers.
            rss, user, system = usage.read_text().split()[-3:]
            peak, cpu = int(rss), float(user) + float(system)
        return Run(
            wall,
            peak,
            cpu,
            returncode,
            out.read_bytes().decode(errors="replace"),
            err.read_bytes().decode(errors="replace"),
        )


def _vm_hwm(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match[1]) if match else 0


# Byte-code cache for the tools' Python; main() points it at a scratch directory.
_pycache: list[Path] = []


def tool_environment(tree: Path | None = None) -> dict[str, str]:
    """Plain output, and Python byte code cached as in a normal install.

    An editable install under PYTHONDONTWRITEBYTECODE (set in some sandboxes) would compile
    imagesync's modules on every start; the cache goes to a scratch directory, not the tree.
    With ``tree`` (another revision's files, ``--against``), its ``imagesync`` package is the
    one imported: PYTHONPATH comes before the editable install's finder.
    """
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if _pycache:
        env["PYTHONPYCACHEPREFIX"] = str(_pycache[0])
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def imagesync_command() -> list[str]:
    """The installed console script next to this Python (what users run), else ``-m``."""
    script = Path(sys.executable).parent / "imagesync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "imagesync"]


# -- the tools ---------------------------------------------------------------------------------

Command = Callable[[Registry, Registry, list[Pushed], Path], list[str]]


@dataclass
class Tool:
    name: str
    # (source, target, images, work directory) -> the command line
    command: Command
    # (source host, target host, source repository) -> where it lands, without the tag
    target_of: Callable[[str, str, str], str]
    is_imagesync: bool = True
    # imagesync at another revision (--against): that revision's files.
    tree: Path | None = None


def imagesync_tool(
    parallelism: int,
    max_concurrency: int | None,
    extra: Sequence[str] = (),
    against: tuple[str, Path] | None = None,
) -> Tool:
    """imagesync as installed; with ``against`` (a revision and its files), that revision's
    code (``python -P -m imagesync``: its console script may differ)."""

    def command(source: Registry, target: Registry, images: list[Pushed], work: Path) -> list[str]:
        images_file = work / "imagesync-images.yaml"
        document = {
            "target": f"{target.host}/imagesync",
            "images": [{"source": f"{source.host}/{p.repository}:{TAG}"} for p in images],
        }
        images_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

        def settings(server: Registry) -> dict[str, object]:
            # Plain HTTP: the same as skopeo's tls-verify: false (imagesync would also find
            # it on loopback by itself, with one probe per registry). TLS: the CA to trust.
            found: dict[str, object] = (
                {"ca_file": str(server.ca_file)} if server.ca_file else {"insecure": True}
            )
            if max_concurrency:
                found["max_concurrency"] = max_concurrency
            return found

        config = work / "imagesync-registries.yaml"
        registries = {source.host: settings(source), target.host: settings(target)}
        config.write_text(yaml.safe_dump({"registries": registries}), encoding="utf-8")
        # -P: without it, -m puts the working directory first on sys.path, and from a
        # checkout that imports the checkout's own imagesync, not the one on PYTHONPATH.
        program = [sys.executable, "-P", "-m", "imagesync"] if against else imagesync_command()
        return [
            *program,
            "sync",
            "-i",
            str(images_file),
            "--parallelism",
            str(parallelism),
            "--registries-config",
            str(config),
            *extra,
        ]

    def target_of(source_host: str, target_host: str, repository: str) -> str:
        # The image-syncer layout: <prefix>/<source host with the port's ':' as '-'>/<repo>.
        return f"{target_host}/imagesync/{source_host.replace(':', '-')}/{repository}"

    name = " ".join(["imagesync", *extra])
    if against is None:
        return Tool(name, command, target_of)
    revision, tree = against
    return Tool(f"{name} @{revision}", command, target_of, tree=tree)


def export_revision(revision: str, scratch: Path) -> tuple[str, Path]:
    """The files of ``revision`` of this repository (its short name, where they are), for
    ``--against``: the code a change must not be slower than, timed in the same run."""
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if short.returncode != 0:
        raise SystemExit(f"--against {revision}: not a commit here: {short.stderr.strip()}")
    name = short.stdout.strip()
    tree = scratch / f"against-{name}"
    tree.mkdir()
    archive = scratch / f"against-{name}.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), name], check=True)
    with tarfile.open(archive) as files:
        files.extractall(tree, filter="data")
    # The timed command imports exactly as this does: a tool that ran this checkout's code
    # under the revision's name would compare the code with itself.
    found = subprocess.run(
        [sys.executable, "-P", "-c", "import imagesync; print(imagesync.__file__)"],
        env=tool_environment(tree),
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(found).is_relative_to(tree):
        raise SystemExit(f"--against {revision}: imagesync is imported from {found}, not {tree}")
    return name, tree


def skopeo_tool() -> Tool:
    def command(source: Registry, target: Registry, images: list[Pushed], work: Path) -> list[str]:
        source_file = work / "skopeo-sync.yaml"
        tls: dict[str, object] = (
            {"tls-verify": True, "cert-dir": str(source.cert_dir)}
            if source.cert_dir
            else {"tls-verify": False}
        )
        document = {source.host: {**tls, "images": {p.repository: [TAG] for p in images}}}
        source_file.write_text(yaml.safe_dump(document), encoding="utf-8")
        return [
            SKOPEO,
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "yaml",
            "--dest",
            "docker",
            *skopeo_tls("dest", target),
            str(source_file),
            f"{target.host}/skopeo",
        ]

    def target_of(source_host: str, target_host: str, repository: str) -> str:
        # skopeo sync without --scoped keeps the last path component.
        return f"{target_host}/skopeo/{repository.rsplit('/', 1)[-1]}"

    return Tool("skopeo", command, target_of, is_imagesync=False)


def skopeo_tls(side: str, server: Registry) -> list[str]:
    """skopeo's TLS options for ``server`` (``side``: dest, or "" for inspect)."""
    prefix = f"--{side}-" if side else "--"
    if server.cert_dir:
        return [f"{prefix}cert-dir={server.cert_dir}"]
    return [f"{prefix}tls-verify=false"]


# -- registries and images ---------------------------------------------------------------------


@contextmanager
def registry(directory: Path, **options: object) -> Iterator[RegistryServer]:
    """A fresh registry whose storage is deleted when it stops."""
    server = RegistryServer(directory, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


def generate(
    host: str,
    shape: Shape,
    repository: Callable[[str], str] = lambda name: name,
    ca_file: Path | None = None,
) -> list[Pushed]:
    """Push ``shape.count`` distinct images (their own seeds: they share only the shape's
    base layers); over TLS when ``ca_file`` is given.

    The same shape always gives the same bytes and digests, whichever the host and
    ``repository`` (which maps the source repository name to where it is pushed).
    """

    def one(number: int) -> Pushed:
        return push_image(
            host,
            repository(f"bench/app-{number:04d}"),
            TAG,
            shape.platforms,
            layers=shape.layers,
            layer_size=shape.layer_size,
            seed=1000 + number,
            base_layers=shape.base_layers,
            scheme="https" if ca_file else None,
            ca_file=ca_file,
        )

    with ThreadPoolExecutor(max_workers=min(8, shape.count)) as pool:
        return list(pool.map(one, range(shape.count)))


def fill(
    tools: Sequence[Tool],
    source: Registry,
    target: Registry,
    shape: Shape,
    images: list[Pushed],
) -> None:
    """Make the target warm for ``tools``: push the same images where each tool puts them.

    Pushed directly (faster than a first sync, not measured), then verified like any run.
    """
    done: set[str] = set()
    for tool in tools:
        layout = tool.target_of(source.host, target.host, "")
        if layout in done:  # imagesync with other options: the same layout
            continue
        done.add(layout)
        started = time.perf_counter()

        def where(name: str, tool: Tool = tool) -> str:
            return tool.target_of(source.host, target.host, name).split("/", 1)[1]

        generate(target.host, shape, where, target.ca_file)
        verify(tool, source, target, images)
        seconds = time.perf_counter() - started
        print(f"  target filled for {tool.name} in {seconds:.1f} s (not measured)", flush=True)


def verify(tool: Tool, source: Registry, target: Registry, images: list[Pushed]) -> None:
    """Every tag in the target holds the source's digest; one sample also through skopeo."""

    def where(image: Pushed) -> str:
        return tool.target_of(source.host, target.host, image.repository)

    scheme = "https" if target.ca_file else "http"
    # Per request: requests lets REQUESTS_CA_BUNDLE win over a session's own setting.
    trust = str(target.ca_file) if target.ca_file else True
    with requests.Session() as session:

        def head(image: Pushed) -> tuple[Pushed, str | None]:
            repository = where(image).split("/", 1)[1]
            response = session.head(
                f"{scheme}://{target.host}/v2/{repository}/manifests/{TAG}",
                headers={"Accept": MANIFEST_ACCEPT},
                verify=trust,
                timeout=60,
            )
            return image, response.headers.get("Docker-Content-Digest")

        with ThreadPoolExecutor(max_workers=4) as pool:
            wrong = [(i, d) for i, d in pool.map(head, images) if d != i.digest]
    if wrong:
        image, found = wrong[0]
        raise SystemExit(
            f"{tool.name}: {len(wrong)} of {len(images)} images missing or wrong in the target, "
            f"e.g. {image.repository}: {found or 'absent'}, expected {image.digest}"
        )
    sample = images[len(images) // 2]
    reference = f"docker://{where(sample)}:{TAG}"
    raw = subprocess.run(
        [SKOPEO, "inspect", "--raw", *skopeo_tls("", target), reference],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    if digest != sample.digest:
        raise SystemExit(f"{tool.name}: skopeo inspect read {digest}, expected {sample.digest}")


# -- running scenarios -------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    tool: str
    walls: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    registry_cpus: list[float] = field(default_factory=list)
    count: int | None = None
    load: list[float] = field(default_factory=list)
    # What the others are divided by: skopeo, or for `help` the bare imports.
    baseline: bool = False
    # imagesync at the revision of --against: what the code run here must not be slower than.
    reference: bool = False
    # The relays' CPU seconds per run (scenarios on a network).
    relay_cpus: list[float] = field(default_factory=list)
    # Per run, how often the most-read shared blob was read from the source (S7).
    shared_reads: list[int] = field(default_factory=list)
    shared_blobs: int = 0
    # Bytes that must cross the link / its rate: no tool copies faster (capped links only).
    link_seconds: float | None = None

    def add(self, run: Run) -> None:
        self.walls.append(run.wall)
        self.rss_kb.append(run.rss_kb)
        if run.cpu is not None:
            self.cpus.append(run.cpu)
        self.registry_cpus.append(run.registry_cpu)
        if run.relay_cpu is not None:
            self.relay_cpus.append(run.relay_cpu)
        if run.shared_reads is not None:
            self.shared_reads.append(run.shared_reads)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def peak_mb(self) -> float:
        return max(self.rss_kb) / 1024

    @property
    def cpu(self) -> str:
        return f"{statistics.median(self.cpus):.2f} s" if self.cpus else "-"

    @property
    def floor(self) -> str:
        """(tool CPU + registries' CPU) / CPUs: no faster on this machine, at any parallelism."""
        if not self.cpus:
            return "-"
        total = statistics.median(self.cpus) + statistics.median(self.registry_cpus)
        return f"{total / (os.cpu_count() or 1):.2f} s"

    @property
    def registries_cpu(self) -> str:
        return f"{statistics.median(self.registry_cpus):.2f} s" if self.registry_cpus else "-"


def run_checked(
    tool: Tool,
    source: Registry,
    target: Registry,
    images: list[Pushed],
    work: Path,
    label: str,
    log: RegistryServer | None = None,
) -> Run:
    """One run of ``tool``, checked. With ``log`` (the source registry, logging requests),
    the run also counts how often each blob that several images share was read."""
    servers = (source, target)
    relays = [s.proxy for s in servers if isinstance(s, Distant)]
    if not tool.is_imagesync:
        forget_skopeo_cache()
    before = [registry_cpu(server) for server in servers]
    relay_before = sum(relay.cpu_seconds() for relay in relays)
    mark = log.log_file.stat().st_size if log else 0
    run = measure(tool.command(source, target, images, work), tool_environment(tool.tree))
    run.registry_cpu = sum(registry_cpu(s) - b for s, b in zip(servers, before, strict=True))
    if relays:
        run.relay_cpu = sum(relay.cpu_seconds() for relay in relays) - relay_before
    if run.returncode != 0:
        raise SystemExit(
            f"{label}: {tool.name} exited {run.returncode}\n{run.stdout[-3000:]}\n"
            f"{run.stderr[-3000:]}"
        )
    if log is not None:
        reads = blob_reads(log, mark)
        run.shared_reads = max((reads[digest] for digest in shared_blobs(images)), default=0)
    verify(tool, source, target, images)
    cpu = f"{run.cpu:6.2f} s CPU" if run.cpu is not None else ""
    extra = f", relays {run.relay_cpu:4.2f} s" if run.relay_cpu is not None else ""
    if run.shared_reads is not None:
        extra += f"; a shared blob read at most {run.shared_reads}x"
    print(
        f"  {label:<22} {tool.name:<26} {run.wall:7.2f} s  {run.rss_kb / 1024:5.0f} MB  {cpu}"
        f"  (registries {run.registry_cpu:5.2f} s CPU{extra})",
        flush=True,
    )
    return run


def forget_skopeo_cache() -> None:
    """Remove skopeo's blob-info cache: every run starts as on a fresh CI runner.

    containers/image keeps, across runs, which blobs it has seen where (and would try mounts
    or skip uploads by it): in /var/lib/containers/cache as root, else under
    $XDG_DATA_HOME (~/.local/share)/containers/cache.
    """
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    for directory in (Path("/var/lib/containers/cache"), data_home / "containers" / "cache"):
        for cache in directory.glob("blob-info-cache-v1.*"):
            cache.unlink(missing_ok=True)


def shared_blobs(images: Sequence[Pushed]) -> set[str]:
    """Digests of the blobs that more than one image lists."""
    listed = Counter(blob.digest for image in images for blob in set(image.blobs))
    return {digest for digest, count in listed.items() if count > 1}


def blob_reads(server: RegistryServer, mark: int) -> Counter[str]:
    """GETs of each blob digest in ``server``'s access log after byte ``mark``."""
    with server.log_file.open("rb") as log:
        log.seek(mark)
        text = log.read().decode(errors="replace")
    return Counter(re.findall(r'"GET /v2/\S+/blobs/(sha256:[0-9a-f]{64})\S* HTTP', text))


def link_seconds(scenario: Scenario, images: Sequence[Pushed]) -> float | None:
    """Every distinct blob and manifest once, over the link's rate: no copy is faster (cold
    scenarios on a capped link only)."""
    if not scenario.rate_mb or scenario.warm:
        return None
    blobs = {blob for image in images for blob in image.blobs}
    manifests = sum(image.size + sum(m.size for m in image.manifests) for image in images)
    return (sum(blob.size for blob in blobs) + manifests) / (scenario.rate_mb * 1e6)


def registry_cpu(server: Registry) -> float:
    """CPU seconds the registry process has used so far (found by its config file)."""
    config = str(server.config_file).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if config not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def run_scenario(scenario: Scenario, tools: list[Tool], runs: int, work: Path) -> list[Row]:
    rows = {
        tool.name: Row(
            scenario.name,
            tool.name,
            baseline=not tool.is_imagesync,
            reference=tool.tree is not None,
        )
        for tool in tools
    }
    logged: dict[str, object] = {"log_level": "debug"} if scenario.count_shared_reads else {}
    tls = {"tls": True} if scenario.tls else {}
    with registry(work / "source", **logged, **tls) as local, far(local, scenario) as source:
        started = time.perf_counter()
        images = generate(local.host, scenario.shape, ca_file=local.ca_file)
        print(f"  generated in {time.perf_counter() - started:.1f} s (not measured)", flush=True)
        if scenario.counts:
            return run_scale(scenario, tools[0], local, images, runs, work)
        log = local if logged else None
        for row in rows.values():
            row.link_seconds = link_seconds(scenario, images)
            row.shared_blobs = len(shared_blobs(images)) if log else 0
        if scenario.warm:
            with registry(work / "target", **tls) as near, far(near, scenario) as target:
                fill(tools, source, target, scenario.shape, images)
                for number in range(1, runs + 1):
                    for tool in tools:
                        rows[tool.name].load.append(os.getloadavg()[0])
                        run = run_checked(tool, source, target, images, work, f"run {number}", log)
                        rows[tool.name].add(run)
        else:
            for number in range(1, runs + 1):
                for tool in tools:
                    rows[tool.name].load.append(os.getloadavg()[0])
                    # A new, empty target for every run.
                    with (
                        registry(work / f"target-{number}", **tls) as near,
                        far(near, scenario) as target,
                    ):
                        run = run_checked(tool, source, target, images, work, f"run {number}", log)
                    rows[tool.name].add(run)
    return list(rows.values())


def run_help(runs: int) -> list[Row]:
    """`imagesync --help` against the imports it cannot do without, alternating, in this venv."""
    ours = Row(HELP, "imagesync --help")
    bare = Row(HELP, "python -c 'import click, yaml'", baseline=True)
    for number in range(1, runs + 1):
        for row, command in (
            (ours, [*imagesync_command(), "--help"]),
            (bare, [sys.executable, "-c", "import click, yaml"]),
        ):
            row.load.append(os.getloadavg()[0])
            run = measure(command, tool_environment())
            if run.returncode != 0:
                raise SystemExit(f"{row.tool} exited {run.returncode}\n{run.stderr[-3000:]}")
            row.add(run)
            print(f"  run {number:<18} {row.tool:<34} {run.wall:7.3f} s", flush=True)
    return [ours, bare]


def run_scale(
    scenario: Scenario,
    tool: Tool,
    source: RegistryServer,
    images: list[Pushed],
    runs: int,
    work: Path,
) -> list[Row]:
    rows = []
    with registry(work / "target") as target:
        fill([tool], source, target, scenario.shape, images)
        for count in scenario.counts:
            row = Row(scenario.name, tool.name, count=count)
            for number in range(1, runs + 1):
                row.load.append(os.getloadavg()[0])
                label = f"{count} images, run {number}"
                row.add(run_checked(tool, source, target, images[:count], work, label))
            rows.append(row)
    return rows


def run_plan_scale(runs: int, parallelism: int, work: Path) -> list[Row]:
    """plan of PLAN_COUNTS warm images (the target holds them all: every entry a skip), and
    validate of a file of VALIDATE_ENTRIES entries; imagesync only, runs alternating."""
    shape = PLAN_SCALE_SHAPE
    rows = {count: Row(PLAN_SCALE, "imagesync plan", count=count) for count in PLAN_COUNTS}
    validate = Row(PLAN_SCALE, f"imagesync validate ({VALIDATE_ENTRIES:,} entries)")
    with registry(work / "source") as source, registry(work / "target") as target:
        started = time.perf_counter()
        images = generate(source.host, shape)
        tool = imagesync_tool(parallelism, None)
        fill([tool], source, target, shape, images)
        print(f"  {shape.describe()} in both registries in {time.perf_counter() - started:.0f} s")
        entries = work / "validate-images.yaml"
        entries.write_text(_validate_file(VALIDATE_ENTRIES), encoding="utf-8")
        for number in range(1, runs + 1):
            for count in PLAN_COUNTS:
                # The images file of the first `count` images (tool.command writes it).
                command = tool.command(source, target, images[:count], work)
                command[command.index("sync")] = "plan"
                rows[count].load.append(os.getloadavg()[0])
                run = measure(command, tool_environment())
                expected = f"Plan: 0 to create, {count} unchanged"
                if run.returncode != 0 or expected not in run.stdout:
                    raise SystemExit(
                        f"plan of {count} exited {run.returncode}: {run.stderr[-2000:]}"
                    )
                rows[count].add(run)
                print(
                    f"  run {number:<3} plan of {count} images {run.wall:7.2f} s "
                    f"{run.rss_kb / 1024:5.0f} MB",
                    flush=True,
                )
            validate.load.append(os.getloadavg()[0])
            run = measure(
                [*imagesync_command(), "validate", "-i", str(entries)], tool_environment()
            )
            if run.returncode != 0:
                raise SystemExit(f"validate exited {run.returncode}: {run.stderr[-2000:]}")
            validate.add(run)
            print(f"  run {number:<3} validate           {run.wall:7.2f} s", flush=True)
    return [*rows.values(), validate]


def _validate_file(count: int) -> str:
    """An images file of ``count`` entries as users write them (every third pinned by
    digest with a tag, every third amd64Only, Docker Hub names and other registries)."""
    lines = ["target: registry.example.com/prod/external", "images:"]
    for number in range(count):
        if number % 3 == 0:
            lines.append(f'  - source: "ghcr.io/org{number % 50}/app-{number}:1.{number}.0"')
        elif number % 3 == 1:
            digest = hashlib.sha256(str(number).encode()).hexdigest()
            lines.append(f'  - source: "busybox@sha256:{digest}"\n    tag: "1.{number}-v1"')
        else:
            lines.append(
                f"  - source: bitnami/exporter-{number}:0.11.1-debian-11-r69\n    amd64Only: true"
            )
    return "\n".join(lines) + "\n"


def plan_scale_lines(rows: list[Row]) -> list[str]:
    """The plan-scale rows as a table of their own, with issue 20's targets."""
    plans = {r.count: r for r in rows if r.scenario == PLAN_SCALE and r.count is not None}
    validate = [r for r in rows if r.scenario == PLAN_SCALE and r.count is None]
    if not plans and not validate:
        return []
    lines = [
        "",
        f"{PLAN_SCALE} — {PLAN_SCALE_SHAPE.describe().split(' x ', 1)[1]} per image, warm "
        "(every entry a skip), loopback; imagesync only:",
        "",
        "| command | median wall | min-max | CPU | peak RSS | targets |",
        "|---|---:|---:|---:|---:|---|",
    ]
    small, large = (plans.get(count) for count in PLAN_COUNTS)
    for count, row in sorted(plans.items()):
        marks = []
        if row is large and small is not None:
            limit = MAX_PLAN_GROWTH * 2 * small.median
            marks.append(
                f"≤ {MAX_PLAN_GROWTH} x 2 x the {small.count}-image time ({limit:.2f} s): "
                f"{'yes' if row.median <= limit else '**no**'}"
            )
        if row is large:
            met = row.peak_mb <= MAX_PLAN_RSS_MB
            marks.append(f"RSS ≤ {MAX_PLAN_RSS_MB} MB: {'yes' if met else '**no**'}")
        lines.append(
            f"| plan, {count:,} images | {_seconds(row.median)} | {_seconds(min(row.walls))}-"
            f"{_seconds(max(row.walls))} | {row.cpu} | {row.peak_mb:.0f} MB | {'; '.join(marks)} |"
        )
    for row in validate:
        met = row.median <= MAX_VALIDATE_SECONDS
        lines.append(
            f"| validate, {VALIDATE_ENTRIES:,} entries | {_seconds(row.median)} | "
            f"{_seconds(min(row.walls))}-{_seconds(max(row.walls))} | {row.cpu} | "
            f"{row.peak_mb:.0f} MB | ≤ {MAX_VALIDATE_SECONDS:g} s: {'yes' if met else '**no**'} |"
        )
    return lines


def warm_up(tools: list[Tool], work: Path) -> None:
    """One untimed sync of one small image per tool: byte code compiled, binaries cached."""
    with registry(work / "source") as source:
        images = generate(source.host, Shape(1))
        for tool in tools:
            with registry(work / f"target-{tool.name}") as target:
                run_checked(tool, source, target, images, work, "warm-up")


# -- profile -----------------------------------------------------------------------------------

# Runs the CLI in-process: phase times (imagesync.run.phase_timings) always; with a profile
# path, a CPU profile of every thread (cProfile alone sees only the main thread, and the work
# happens in worker threads).
PROFILE_WRAPPER = r"""
import cProfile, json, pstats, sys, threading, time
began = time.perf_counter()
out, phases_out = sys.argv.pop(1), sys.argv.pop(1)
profiles = []
if out != "-":
    lock = threading.Lock()
    original_run = threading.Thread.run
    def profiled_run(self):
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()
    threading.Thread.run = profiled_run
    profiles.append(cProfile.Profile(time.thread_time))
    profiles[-1].enable()
phases = {}
import imagesync.cli as cli
from imagesync.run import phase_timings
phases["imports"] = time.perf_counter() - began
sys.argv[0] = "imagesync"
code = 0
try:
    with phase_timings() as timings:
        cli.main()
except SystemExit as exit_:
    code = exit_.code or 0
finally:
    phases.update(timings)
    if profiles:
        profiles[0].disable()
        stats = pstats.Stats(profiles[0])
        for other in profiles[1:]:
            try:
                stats.add(other)
            except TypeError:
                pass  # a thread that never ran profiled code
        stats.dump_stats(out)
    phases["in-process total"] = time.perf_counter() - began
    with open(phases_out, "w") as f:
        json.dump(phases, f)
sys.exit(code)
"""


def profile_largest(ours: Tool, theirs: Tool, scale: Scenario, work: Path) -> list[str]:
    """Where imagesync's time goes on the largest warm (S2-shaped) run, and request counts."""
    lines: list[str] = []
    count = max(scale.counts)
    wrapper = work / "profile_wrapper.py"
    wrapper.write_text(PROFILE_WRAPPER, encoding="utf-8")
    # The registry's access log (log level debug) has one line per request.
    logs = "log_level" in inspect.signature(RegistryServer).parameters
    logged: dict[str, object] = {"log_level": "debug"} if logs else {}
    with registry(work / "source", **logged) as source:
        images = generate(source.host, Shape(count))
        with registry(work / "target", **logged) as target:
            fill([ours, theirs], source, target, Shape(count), images)
            command = ours.command(source, target, images, work)
            args = command[len(imagesync_command()) :]
            # 1. Requests per image, from the registries' access logs.
            if logged:
                lines.append(f"Requests per image, {count} images, warm (registry access logs):")
                for tool in (ours, theirs):
                    lines += counted_run(tool, source, target, images, work)
            # 2. Phases: start-up and imports, plan, apply.
            phases_file = work / "phases.json"
            base = measure(
                [sys.executable, str(wrapper), "-", str(phases_file), *args], tool_environment()
            )
            phases = json.loads(phases_file.read_text())
            version = statistics.median(
                measure([*imagesync_command(), "--version"], tool_environment()).wall
                for _ in range(3)
            )
            cpu = f", {base.cpu:.2f} s CPU" if base.cpu is not None else ""
            lines += [
                "",
                f"imagesync sync, {count} images, warm: {base.wall:.2f} s wall{cpu}; "
                f"`imagesync --version` (interpreter start-up + imports) {version:.2f} s",
                "  phases: "
                + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()),
            ]
            # 3. CPU profile of every thread.
            prof = RESULTS / f"profile-warm-{count}.prof"
            profiled = measure(
                [sys.executable, str(wrapper), str(prof), str(phases_file), *args],
                tool_environment(),
            )
            if profiled.returncode != 0:
                raise SystemExit(f"the profiled run failed:\n{profiled.stderr[-3000:]}")
            lines += ["", *_profile_summary(prof)]
    # 4. Requests per image when copying (cold), on a small sample.
    if logged:
        sample = 20
        with registry(work / "source-cold", **logged) as source:
            images = generate(source.host, Shape(sample))
            lines += ["", f"Requests per image, {sample} images, cold (S3's shape):"]
            for tool in (ours, theirs):
                with registry(work / f"target-cold-{tool.name}", **logged) as target:
                    lines += counted_run(tool, source, target, images, work)
    print("\n".join(lines))
    return lines


def counted_run(
    tool: Tool, source: RegistryServer, target: RegistryServer, images: list[Pushed], work: Path
) -> list[str]:
    """Run ``tool`` once; its requests per image, by kind, from both access logs."""
    servers = (source, target)
    marks = [server.log_file.stat().st_size for server in servers]
    run = measure(tool.command(source, target, images, work), tool_environment())
    if run.returncode != 0:
        raise SystemExit(f"{tool.name} exited {run.returncode}\n{run.stderr[-3000:]}")
    texts = []
    for server, mark in zip(servers, marks, strict=True):
        with server.log_file.open("rb") as log:
            log.seek(mark)
            texts.append(log.read().decode(errors="replace"))
    verify(tool, source, target, images)  # after reading: its requests are not the tool's
    kinds: Counter[str] = Counter()
    for side, text in zip(("source", "target"), texts, strict=True):
        for match in re.finditer(r'"(HEAD|GET|PUT|POST|PATCH|DELETE) (\S+) HTTP', text):
            kinds[f"{side} {match[1]} {_request_kind(match[2])}"] += 1
    count = len(images)
    lines = [f"  {tool.name}: {sum(kinds.values()) / count:.1f} per image"]
    lines += [f"    {number / count:5.2f}  {kind}" for kind, number in sorted(kinds.items())]
    return lines


def _request_kind(path: str) -> str:
    for pattern, kind in (
        (r"/manifests/sha256:", "manifest by digest"),
        (r"/manifests/sha256-", "tag-schema index"),
        (r"/manifests/", "manifest by tag"),
        (r"/blobs/uploads", "blob upload"),
        (r"/blobs/", "blob"),
        (r"/tags/list", "tag list"),
        (r"/referrers/", "referrers API"),
        (r"^/v2/?$", "/v2/ (ping)"),
    ):
        if re.search(pattern, path):
            return kind
    return path.split("?")[0]


# Where CPU goes: (label, file fragment, function) whose cumulative time is shown. Nested
# entries are parts of the one above them.
_BREAKDOWN = (
    ("start-up: importing imagesync.cli and its dependencies", "imagesync/cli.py", "<module>"),
    ("planning, per image (worker threads)", "imagesync/plan/planner.py", "plan"),
    ("applying, per image (worker threads)", "imagesync/apply/applier.py", "apply_change"),
    (
        "every HTTP request: imagesync's Transport._send",
        "imagesync/stores/registry/transport.py",
        "_send",
    ),
    (
        "  building the request (URL, headers, body)",
        "imagesync/stores/registry/wire.py",
        "_prepared",
    ),
    (
        "  requests: environment (proxies, CA bundle variables)",
        "imagesync/stores/registry/host.py",
        "__call__",
    ),
    ("  requests: send via the adapter", "requests/adapters.py", "send"),
    ("    urllib3: connection pool urlopen", "urllib3/connectionpool.py", "urlopen"),
    ("      http.client: read the response head", "http/client.py", "begin"),
    ("      socket: sendall", "~", "<method 'sendall' of '_socket.socket' objects>"),
    ("      socket: recv_into", "~", "<method 'recv_into' of '_socket.socket' objects>"),
    ("rendering the plan and the report", "imagesync/render/__init__.py", "render_plan"),
)


def _profile_summary(path: Path) -> list[str]:
    stats = pstats.Stats(str(path), stream=io.StringIO())
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in table.values())
    lines = [
        f"CPU profile of every thread (thread CPU time; cProfile's overhead inflates it about "
        f"3x): {total:.2f} s",
        f"  {path}",
        "  cumulative CPU:",
    ]
    for label, fragment, function in _BREAKDOWN:
        seconds = sum(
            row[3]
            for (filename, _line, name), row in table.items()
            if fragment in filename and name == function
        )
        lines.append(f"    {seconds:6.2f} s {seconds / total:4.0%}  {label}")
    text = io.StringIO()
    pstats.Stats(str(path), stream=text).sort_stats("tottime").print_stats(12)
    top = [line for line in text.getvalue().splitlines() if line.strip()][-13:]
    lines += ["  top functions by own CPU:", *(f"    {line}" for line in top)]
    return lines


# -- report ------------------------------------------------------------------------------------


def checks(row: Row, baseline: Row | None, reference: Row | None = None) -> list[str]:
    """The scenario's targets for an imagesync row, each with whether it was met; with
    ``reference`` (--against), also whether it was as fast as that revision in this run."""
    if row.baseline or row.reference:
        return []
    marks = []

    def check(text: str, met: bool) -> None:
        marks.append(f"{text}: {'yes' if met else '**no**'}")

    if row.scenario == HELP:
        if baseline:
            check(f"≤ {MAX_HELP_RATIO:g}x", row.median / baseline.median <= MAX_HELP_RATIO)
        return marks
    scenario = SCENARIOS[row.scenario]
    if scenario.max_ratio is not None and baseline:
        check(f"≤ {scenario.max_ratio}x", row.median / baseline.median <= scenario.max_ratio)
    if scenario.max_link_ratio is not None and row.link_seconds:
        limit = scenario.max_link_ratio * row.link_seconds
        check(f"≤ {scenario.max_link_ratio}x bytes÷bandwidth ({limit:.2f} s)", row.median <= limit)
    plain = not row.tool.endswith("--no-signatures")
    if scenario.max_wall is not None and plain:
        check(f"≤ {scenario.max_wall:.2f} s (README, earlier run)", row.median <= scenario.max_wall)
    if reference is not None and plain:
        ratio = row.median / reference.median
        check(f"no slower than {reference.tool} ({ratio:.2f}x)", ratio <= 1)
    if scenario.max_rss_mb is not None:
        check(f"RSS < {scenario.max_rss_mb:.0f} MB", row.peak_mb < scenario.max_rss_mb)
    if scenario.count_shared_reads and row.shared_reads:
        check(f"each of {row.shared_blobs} shared blobs read once", max(row.shared_reads) == 1)
    return marks


def table(rows: list[Row]) -> str:
    baselines = {r.scenario: r for r in rows if r.baseline and r.count is None}
    references = {r.scenario: r for r in rows if r.reference}
    lines = [
        "| scenario | tool | median wall | min-max | CPU | registries' CPU | CPU floor "
        "| peak RSS | ÷ baseline | ÷ bytes÷bandwidth | targets |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row.count is not None or row.scenario == PLAN_SCALE:
            continue
        baseline = baselines.get(row.scenario)
        ratio_text = ""
        if baseline and not row.baseline:
            ratio_text = f"{row.median / baseline.median:.2f}x"
        link_text = f"{row.median / row.link_seconds:.2f}x" if row.link_seconds else ""
        reads = max(row.shared_reads, default=0)
        row_reads = f" (a shared blob read ≤ {reads}x)" if reads else ""
        lines.append(
            f"| {row.scenario} {_title(row.scenario)} | {row.tool}{row_reads} | "
            f"{_seconds(row.median)} | {_seconds(min(row.walls))}-{_seconds(max(row.walls))} | "
            f"{row.cpu} | {row.registries_cpu if row.scenario != HELP else '-'} | "
            f"{row.floor if row.scenario != HELP else '-'} | {row.peak_mb:.0f} MB | "
            f"{ratio_text} | {link_text} | "
            f"{'; '.join(checks(row, baseline, references.get(row.scenario)))} |"
        )
    relayed = [r for r in rows if r.relay_cpus and not r.baseline and not r.reference]
    if relayed:
        lines += [""]
        for row in relayed:
            scenario = SCENARIOS[row.scenario]
            floor = f", bytes÷bandwidth {row.link_seconds:.2f} s" if row.link_seconds else ""
            lines.append(
                f"{row.scenario} ({scenario.network} per registry{floor}): the relays used "
                f"{statistics.median(row.relay_cpus):.2f} s CPU per run (median, {row.tool})."
            )
    scale = [r for r in rows if r.count is not None and r.scenario == "scale"]
    if scale:
        first = scale[0]
        assert first.count is not None
        lines += [
            "",
            f"scale — {SCENARIOS['scale'].title} (S2's shape), {scale[0].tool} only:",
            "",
            "| images | median wall | min-max | CPU | per image | each added image "
            "| ÷ linear from the first |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        previous: Row | None = None
        for row in scale:
            assert row.count is not None
            linear = first.median * row.count / first.count
            # What one more image costs, start-up aside: the slope between two sizes.
            added = ""
            if previous is not None and previous.count is not None:
                slope = (row.median - previous.median) / (row.count - previous.count)
                added = f"{slope * 1000:.1f} ms"
            lines.append(
                f"| {row.count} | {row.median:.2f} s | {min(row.walls):.2f}-{max(row.walls):.2f} s"
                f" | {row.cpu} | {row.median / row.count * 1000:.1f} ms | {added} | "
                f"{row.median / linear:.2f}x |"
            )
            previous = row
    lines += plan_scale_lines(rows)
    return "\n".join(lines)


LEGEND = """\
Wall time includes process start-up. CPU: the tool's own user+system time. Registries' CPU:
what the source and target registry processes used during the run. CPU floor: (tool CPU +
registries' CPU) / CPUs, the least wall time this machine needs for that work at any
parallelism; imagesync's own CPU time is a floor too (one Python process: its Python code runs
on one CPU at a time). ÷ baseline: median wall time over skopeo's in the same scenario (for
start-up: over `python -c 'import click, yaml'` in the same venv, median of 7). ÷ bytes÷bandwidth:
median wall time over (every distinct blob and manifest once) / the link's rate, the time the
link itself needs. Targets: issue 8's and issue 15's; "README, earlier run" is the figure
published before, which this run must not exceed. Shared blob reads are counted in the source
registry's access log: 1x means each blob that several images share was read once."""


def _title(scenario: str) -> str:
    return {HELP: "start-up", PLAN_SCALE: "plan at scale"}.get(scenario) or (
        SCENARIOS[scenario].title
    )


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def environment(runs: int, parallelism: int, max_concurrency: int | None, load: str) -> str:
    def first_line(command: list[str]) -> str:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    commit = first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "imagesync"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    registry_version = first_line(["/usr/bin/docker-registry", "--version"]).split()[-1]
    concurrency = max_concurrency or "imagesync's default (8)"
    return "\n".join(
        [
            f"- when: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; median of "
            f"{runs} runs per tool; machine load average (1 min) during the runs {load}",
            f"- imagesync {commit}{' with uncommitted changes in imagesync/' if dirty else ''}"
            f", `sync --parallelism {parallelism}`, per-registry max_concurrency {concurrency}",
            f"- {first_line([SKOPEO, '--version'])}, "
            "`sync --all --preserve-digests --src yaml --dest docker`",
            f"- docker-registry {registry_version} (filesystem storage), both registries on "
            "127.0.0.1, plain HTTP (S10: TLS); S5-S6, S8-S10 through benchmarks/latency.py's "
            "relays",
            "- skopeo's blob-info cache is removed before each of its runs; every cold run of "
            "either tool gets a new, empty target registry",
            f"- Python {platform.python_version()}, {os.cpu_count()} CPUs, "
            f"{platform.system()} {platform.release()}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per tool (default 3)")
    parser.add_argument(
        "--scenarios",
        default=",".join([*SCENARIOS, HELP, PLAN_SCALE]),
        help=f"comma-separated, from {','.join([*SCENARIOS, HELP, PLAN_SCALE])} (default: all)",
    )
    parser.add_argument(
        "--parallelism", type=int, default=16, help="imagesync --parallelism (default 16)"
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="imagesync's per-registry max_concurrency (default: its own, 8)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile imagesync on the largest warm run and count requests per image",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "latest.md", help="where to write the results"
    )
    parser.add_argument(
        "--against",
        metavar="REVISION",
        help=(
            "also time imagesync at this git revision in every copy scenario, alternating with "
            "the others: whether this code is slower than that, on this machine, now"
        ),
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    known = [*SCENARIOS, HELP, PLAN_SCALE]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for binary in (SKOPEO, "/usr/bin/docker-registry"):
        if not shutil.which(binary):
            parser.error(f"{binary} is missing: sudo apt-get install -y docker-registry skopeo")

    RESULTS.mkdir(parents=True, exist_ok=True)
    ours = imagesync_tool(args.parallelism, args.max_concurrency)
    unsigned = imagesync_tool(args.parallelism, args.max_concurrency, ["--no-signatures"])
    theirs = skopeo_tool()
    rows: list[Row] = []
    notes: list[str] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imagesync-bench-") as scratch:
        _pycache.append(Path(scratch) / "pycache")

        def fresh(name: str) -> Path:
            work = Path(scratch) / name
            work.mkdir()
            return work

        references: list[Tool] = []
        if args.against:
            revision = export_revision(args.against, Path(scratch))
            references.append(imagesync_tool(args.parallelism, args.max_concurrency, (), revision))
        print("== warm-up (byte code, page cache; not measured)", flush=True)
        warm_up([ours, theirs, *references], fresh("warm-up"))
        for name in names:
            if name == HELP:
                print(f"== {HELP}: imagesync --help vs. python -c 'import click, yaml'", flush=True)
                rows += run_help(HELP_RUNS)
                continue
            if name == PLAN_SCALE:
                print(f"== {PLAN_SCALE}: plan of {PLAN_COUNTS} warm images, validate", flush=True)
                rows += run_plan_scale(args.runs, args.parallelism, fresh(name))
                continue
            scenario = SCENARIOS[name]
            print(
                f"== {name} ({scenario.title}): {scenario.shape.describe()}, {scenario.network}",
                flush=True,
            )
            if scenario.counts:
                tools = [ours]
            elif scenario.no_signatures_too:
                tools = [ours, unsigned, theirs, *references]
            else:
                tools = [ours, theirs, *references]
            rows += run_scenario(scenario, tools, args.runs, fresh(name))
        if args.profile:
            print("== profile", flush=True)
            notes = profile_largest(ours, theirs, SCENARIOS["scale"], fresh("profile"))
    loads = [value for row in rows for value in row.load]
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"
    header = environment(args.runs, args.parallelism, args.max_concurrency, load)
    text = table(rows)
    document = f"# imagesync benchmark\n\n{header}\n\n{text}\n\n{LEGEND}\n"
    if notes:
        document += "\n## Profile\n\n```\n" + "\n".join(notes) + "\n```\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(document, encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps([row.__dict__ for row in rows], indent=1), encoding="utf-8"
    )
    print(f"\n{header}\n\n{text}\n")
    print(f"({time.perf_counter() - began:.0f} s in all; written to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
