#!/usr/bin/env python3
"""Referrer discovery in a source layout: plan's time against the number of entries.

    python benchmarks/layout_referrers.py [--entries 1000,3000,9000] [--referrers 100] [--runs 3]

A layout has no referrers API: what refers to an image is found by reading the manifests its
``index.json`` lists. Issue 30 measured 499 s for one image with 100 referrers among 9,000
untagged 8 KiB entries, since every subject read the index and every manifest again. This
builds such a layout by hand (one image, ``--referrers`` referrers of it, N untagged image
manifests of 8 KiB that refer to nothing), then times ``imagesync plan --source-layout`` into
an empty ``oci:`` target, in a fresh process (start-up included), the best of ``--runs``. The
time per entry should stay flat as N grows: discovery reads each manifest once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.images import OCI_MANIFEST, digest_of, push_image, push_referrer  # noqa: E402
from tests.harness.layouts import LayoutPusher  # noqa: E402

REPOSITORY = "demo.example/app"
ENTRY_BYTES = 8 * 1024


def build(root: Path, entries: int, referrers: int) -> Path:
    """A source tree with the image ``demo.example/app:1.0``, ``referrers`` referrers of it and
    ``entries`` untagged manifests of about 8 KiB; its images file."""
    pusher = LayoutPusher(root)
    image = push_image(pusher, REPOSITORY, "1.0", platforms=[("linux", "amd64")])
    for seed in range(referrers):
        push_referrer(pusher, REPOSITORY, image, seed=seed, update_tag_schema=False)
    index = pusher.index(REPOSITORY)
    # Written at once, not entry by entry: the harness rewrites index.json for each.
    for number in range(entries):
        raw = untagged(number)
        digest = pusher.put_blob(REPOSITORY, raw).digest
        index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)})
    (root / REPOSITORY / "index.json").write_text(json.dumps(index))
    images = root.parent / "images.yaml"
    images.write_text(f'target: registry.internal/mirror\nimages:\n- source: "{REPOSITORY}:1.0"\n')
    return images


def untagged(number: int) -> bytes:
    """An image manifest of about ENTRY_BYTES that refers to nothing (its blobs are absent:
    nothing reads them)."""
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {**config, "digest": digest_of(b"%d" % number)},
        "layers": [],
        "annotations": {"padding": "x" * (ENTRY_BYTES - 300), "number": str(number)},
    }
    return json.dumps(manifest).encode()


def plan_seconds(source: Path, images: Path, target: Path, referrers: int) -> float:
    command = [sys.executable, "-m", "imagesync", "plan", "-i", str(images)]
    command += ["--source-layout", str(source), "-r", f"oci:{target}", "--format", "json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plan failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    planned = json.loads(done.stdout)
    found = sum(s.get("kind") == "referrer" for c in planned["changes"] for s in c["subchanges"])
    if found != referrers:
        raise SystemExit(f"plan found {found} referrers, not {referrers}")
    return elapsed


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


def best_of(entries: int, referrers: int, runs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="imagesync-bench-") as scratch:
        source = Path(scratch) / "source"
        images = build(source, entries, referrers)
        targets = [Path(scratch) / f"disk{run}" for run in range(runs)]
        return min(plan_seconds(source, images, target, referrers) for target in targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--entries", default="1000,3000,9000")
    parser.add_argument("--referrers", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    # The same plan without untagged entries: start-up, the image and its referrers. What
    # the entries add over it is what must grow linearly.
    base = best_of(0, options.referrers, options.runs)
    print(
        f"no untagged entries, {options.referrers} referrers: plan {base:.2f}s (best of "
        f"{options.runs})"
    )
    print(f"{'untagged entries':>16} {'plan':>8} {'over none':>10} {'per 1,000 entries':>18}")
    for entries in (int(n) for n in options.entries.split(",")):
        best = best_of(entries, options.referrers, options.runs)
        per = (best - base) / entries * 1000
        print(f"{entries:>16,} {best:>7.2f}s {best - base:>9.2f}s {per:>17.3f}s", flush=True)


if __name__ == "__main__":
    main()
