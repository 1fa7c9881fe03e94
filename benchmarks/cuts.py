"""Issue 31: a large layer copied over links that break, imagesync against skopeo.

One image with one large layer (2 GiB by default) is copied from a source registry to an empty
target registry, each behind a relay (benchmarks/latency.py) that caps the link's bandwidth
and resets every connection after a number of bytes: a fixed one (``--cut``, 200 MiB), or a
random one for each connection (``--random-cut``, 50-400 MiB). The target's relay reaches the
registry through a front that stores request bodies up to 64 MiB before passing them on (as
nginx does by default in front of registries): the registry never sees a chunk cut short.

For each tool and cut profile it reports the bytes that crossed each link (source reads,
target writes) divided by the blob's size, the wall time divided by the time the blob needs
at the link's bandwidth, the connections cut, the peak RSS, and whether the image landed
digest-exact within ``--limit`` seconds. Tools: imagesync (this checkout), skopeo (``skopeo
copy``, which starts each blob over), and with ``--against REV`` imagesync at that revision.
Not a timed test: run it by hand (it takes minutes).

    .venv/bin/python benchmarks/cuts.py --against fc0534b
    .venv/bin/python benchmarks/cuts.py --size-mib 512 --cut-mib 50 --random-cut-mib 12,100
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.latency import LatencyProxy  # noqa: E402
from benchmarks.run import export_revision, registry, tool_environment  # noqa: E402
from tests.harness.faultproxy import FaultProxy  # noqa: E402
from tests.harness.images import push_image  # noqa: E402

MIB = 1024 * 1024
SKOPEO = os.environ.get("IMAGESYNC_BENCH_SKOPEO", "/usr/bin/skopeo")


@dataclass
class Outcome:
    tool: str
    profile: str
    landed: bool
    wall: float
    down: int  # bytes over the source's link (both directions)
    up: int  # bytes over the target's link (both directions)
    cuts: int
    rss_kb: int
    note: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--cut-mib", type=int, default=200)
    parser.add_argument("--random-cut-mib", default="50,400")
    parser.add_argument("--rate-mb", type=float, default=100.0, help="link MB/s, each way")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per copy")
    parser.add_argument("--against", default=None, help="also imagesync at this revision")
    parser.add_argument("--tools", default="imagesync,skopeo")
    options = parser.parse_args()
    low, high = (int(n) * MIB for n in options.random_cut_mib.split(","))
    profiles: dict[str, Callable[[], int]] = {
        f"cut every {options.cut_mib} MiB": lambda: options.cut_mib * MIB,
        f"cut at random {low // MIB}-{high // MIB} MiB": lambda: random.randint(low, high),
    }
    with tempfile.TemporaryDirectory(prefix="imagesync-cuts-") as scratch:
        work = Path(scratch)
        tools = _tools(options, work)
        outcomes = _measure_all(options, profiles, tools, work)
    _print(outcomes, options)


def _tools(options: argparse.Namespace, work: Path) -> dict[str, Callable[..., list[str]]]:
    tools: dict[str, Callable[..., list[str]]] = {}
    names = options.tools.split(",")
    if "imagesync" in names:
        tools["imagesync"] = _imagesync([sys.executable, "-m", "imagesync"], None)
    if options.against:
        name, tree = export_revision(options.against, work)
        tools[f"imagesync @{name}"] = _imagesync([sys.executable, "-P", "-m", "imagesync"], tree)
    if "skopeo" in names:
        tools["skopeo"] = _skopeo
    return tools


def _measure_all(
    options: argparse.Namespace,
    profiles: dict[str, Callable[[], int]],
    tools: dict[str, Callable[..., list[str]]],
    work: Path,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with registry(work / "source") as source:
        started = time.monotonic()
        pushed = push_image(
            source.host,
            "ml/cuda",
            "1.0",
            platforms=[("linux", "amd64")],
            index=False,
            layers=[options.size_mib * MIB],
        )
        print(f"pushed a {options.size_mib} MiB layer in {time.monotonic() - started:.0f} s")
        for profile, cut in profiles.items():
            for name, command in tools.items():
                outcome = _one(options, source, pushed.digest, name, command, profile, cut, work)
                print(_line(outcome, options), flush=True)
                outcomes.append(outcome)
    return outcomes


def _one(
    options: argparse.Namespace,
    source: object,
    digest: str,
    name: str,
    command: Callable[..., list[str]],
    profile: str,
    cut: Callable[[], int],
    work: Path,
) -> Outcome:
    rate = options.rate_mb * 1e6
    run_dir = work / re.sub(r"\W+", "-", f"{name}-{profile}")
    run_dir.mkdir()
    with ExitStack() as stack:
        target = stack.enter_context(registry(run_dir / "target"))
        front = stack.enter_context(FaultProxy(target.host, buffer_requests=64 * MIB))
        down = stack.enter_context(LatencyProxy(source.host, 0.0, rate, cut))  # type: ignore[attr-defined]
        up = stack.enter_context(LatencyProxy(front.host, 0.0, rate, cut))
        argv = command(down.host, up.host, run_dir)
        env = tool_environment(getattr(command, "tree", None))
        env["IMAGESYNC_STATE_DIR"] = str(run_dir / "state")
        landed, wall, rss, note = _run(argv, env, options.limit)
        landed = landed and _digest(target.host, down.host, name) == digest
        return Outcome(
            name,
            profile,
            landed,
            wall,
            down.up.sent + down.down.sent,
            up.up.sent + up.down.sent,
            down.cuts + up.cuts,
            rss,
            note,
        )


def _imagesync(program: list[str], tree: Path | None) -> Callable[..., list[str]]:
    def command(source: str, target: str, work: Path) -> list[str]:
        images = work / "images.yaml"
        document = {
            "target": f"{target}/m",
            "images": [{"source": f"{source}/ml/cuda:1.0", "amd64Only": True}],
        }
        images.write_text(yaml.safe_dump(document), encoding="utf-8")
        config = work / "registries.yaml"
        insecure = {"insecure": True}
        config.write_text(
            yaml.safe_dump({"registries": {source: insecure, target: insecure}}),
            encoding="utf-8",
        )
        return [
            *program,
            "sync",
            "-i",
            str(images),
            "--registries-config",
            str(config),
            "--retries",
            "10",
        ]

    command.tree = tree  # type: ignore[attr-defined]
    return command


def _skopeo(source: str, target: str, work: Path) -> list[str]:
    return [
        SKOPEO,
        "copy",
        "--retry-times",
        "10",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{source}/ml/cuda:1.0",
        f"docker://{target}/m/ml/cuda:1.0",
    ]


def _run(argv: list[str], env: dict[str, str], limit: float) -> tuple[bool, float, int, str]:
    """Run ``argv`` to its end or ``limit``: whether it succeeded, wall, peak RSS, a note."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        peak = 0
        while process.poll() is None:
            peak = max(peak, _vm_hwm(process.pid))
            if time.perf_counter() - started > limit:
                process.kill()
                process.wait()
                return False, time.perf_counter() - started, peak, f"stopped at {limit:.0f} s"
            time.sleep(0.05)
        wall = time.perf_counter() - started
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
    said = re.sub(r"\?[^\s\"\\]*", "?…", "".join(tail))  # an upload URL's _state: not shown
    note = "" if process.returncode == 0 else f"exit {process.returncode}: {said[:160]}"
    return process.returncode == 0, wall, peak, note


def _vm_hwm(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match[1]) if match else 0


def _digest(target: str, source: str, tool: str) -> str | None:
    """The digest of the copy in the target registry (asked directly, not through a relay)."""
    from tests.harness.skopeo import SkopeoError, raw_digest

    # imagesync's layout: <prefix>/<source host, ':' as '-'>/<repository>.
    within = f"{source.replace(':', '-')}/" if tool.startswith("imagesync") else ""
    try:
        return raw_digest(f"{target}/m/{within}ml/cuda:1.0")
    except SkopeoError:  # nothing there: the copy did not land
        return None


def _line(o: Outcome, options: argparse.Namespace) -> str:
    size = options.size_mib * MIB
    ideal = size / (options.rate_mb * 1e6)
    return (
        f"| {o.tool} | {o.profile} | {'yes' if o.landed else 'no'} | "
        f"{o.down / size:.2f}x | {o.up / size:.2f}x | {o.wall / ideal:.2f} ({o.wall:.0f} s) | "
        f"{o.cuts} | {o.rss_kb / 1024:.0f} MB | {o.note} |"
    )


def _print(outcomes: list[Outcome], options: argparse.Namespace) -> None:
    print()
    print(
        f"{options.size_mib} MiB layer, links of {options.rate_mb:g} MB/s each way, "
        f"limit {options.limit:.0f} s per copy"
    )
    print(
        "| tool | link | landed | source link ÷ blob | target link ÷ blob | "
        "wall ÷ (blob ÷ bandwidth) | connections cut | peak RSS | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for outcome in outcomes:
        print(_line(outcome, options))


if __name__ == "__main__":
    main()
