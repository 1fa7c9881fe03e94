#!/usr/bin/env python3
"""What one request costs on this machine, in CPU: the registry's, and the client's.

    python benchmarks/floor.py [--requests 200] [--rounds 5]

S7 (twelve images on loopback) is CPU-bound: both registries and imagesync share the
machine's CPUs, and imagesync already sends the fewest requests the design allows. What is
left is the price of a request, which this prints, with the requests of one S7 run:

- each tool's requests per image in one cold S7 run, by kind, from the registries' logs;
- the registry's CPU per request, by kind (a ping, a manifest, a tag list, a config blob and a
  1.5 MiB layer, an upload session), sent one at a time over one kept connection;
- the client's CPU per manifest HEAD, through imagesync's registry client, through a
  ``requests.Session``, through ``urllib3`` and through ``http.client``: the same request on
  the same registry, the minimum over ``--rounds`` rounds (the machine's noise only adds).
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import requests
import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import (  # noqa: E402
    MANIFEST_ACCEPT,
    SHARED_BASE,
    TAG,
    counted_run,
    generate,
    imagesync_tool,
    registry,
    registry_cpu,
    skopeo_tool,
)
from imagesync.reference import parse_reference  # noqa: E402
from imagesync.stores.connection import ConnectionOptions, open_client  # noqa: E402

# One image of S7's shape, one platform: a base layer, a layer of its own, a small config.
SHAPE = replace(
    SHARED_BASE,
    count=1,
    platforms=SHARED_BASE.platforms[:1],
    base_layers=SHARED_BASE.base_layers[:1],
)
HEADERS = {"Accept": MANIFEST_ACCEPT, "User-Agent": "imagesync-floor"}


def registry_costs(
    pool: urllib3.HTTPConnectionPool,
    cpu: Callable[[], float],
    paths: dict[str, tuple[str, str]],
    n: int,
) -> dict[str, float]:
    """CPU milliseconds the registry behind ``pool`` spends per request of each kind."""
    costs: dict[str, float] = {}
    for name, (method, path) in paths.items():
        before = cpu()
        for _ in range(n):
            pool.request(method, path, headers=HEADERS)  # the body is read whole
        # The registry's clock ticks at 100 Hz: n requests make the tick's error small.
        costs[name] = (cpu() - before) * 1000 / n
    return costs


def client_costs(senders: dict[str, Callable[[], object]], n: int, rounds: int) -> dict[str, float]:
    """Client CPU microseconds per request, the minimum over ``rounds``."""
    best = {name: float("inf") for name in senders}
    for _ in range(rounds):
        for name, send in senders.items():
            for _ in range(n // 10):  # connections open, caches warm
                send()
            started = time.process_time()
            for _ in range(n):
                send()
            best[name] = min(best[name], (time.process_time() - started) * 1e6 / n)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per kind (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="client rounds (default 5)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="imagesync-floor-"))
    try:
        counts: list[str] = []
        with registry(work / "s7-source", log_level="debug") as source:
            images = generate(source.host, SHARED_BASE)
            for tool in (imagesync_tool(16, None), skopeo_tool()):
                with registry(work / f"s7-{tool.name}", log_level="debug") as target:
                    counts += counted_run(tool, source, target, images, work)
        with registry(work / "registry") as server:
            (image,) = generate(server.host, SHAPE)
            by_size = sorted(image.blobs, key=lambda blob: blob.size)
            small, large = by_size[0], by_size[-1]
            repository = f"/v2/{image.repository}"
            paths = {
                "ping (GET /v2/)": ("GET", "/v2/"),
                "HEAD manifest": ("HEAD", f"{repository}/manifests/{TAG}"),
                "GET manifest": ("GET", f"{repository}/manifests/{TAG}"),
                "GET tags/list": ("GET", f"{repository}/tags/list?n=1000"),
                f"GET blob, {small.size} B": ("GET", f"{repository}/blobs/{small.digest}"),
                f"GET blob, {large.size} B": ("GET", f"{repository}/blobs/{large.digest}"),
                "POST upload session": ("POST", f"{repository}/blobs/uploads/"),
            }
            address, port = server.host.rsplit(":", 1)
            pool = urllib3.HTTPConnectionPool(address, int(port), maxsize=1)
            served = registry_costs(pool, lambda: registry_cpu(server), paths, args.requests)

            config = work / "registries.yaml"
            config.write_text(f"registries:\n  {server.host}:\n    insecure: true\n")
            client = open_client(ConnectionOptions(registries_config=config), None)
            reference = parse_reference(f"{server.host}/{image.repository}:{TAG}")
            url = f"http://{server.host}{repository}/manifests/{TAG}"
            session = requests.Session()
            connection = http.client.HTTPConnection(server.host)

            def through_http_client() -> None:
                connection.request("HEAD", f"{repository}/manifests/{TAG}", headers=HEADERS)
                connection.getresponse().read()

            senders: dict[str, Callable[[], object]] = {
                "imagesync's client": lambda: client.head_manifest(reference),
                "requests.Session": lambda: session.head(url, headers=HEADERS).content,
                "urllib3": lambda: pool.request("HEAD", url, headers=HEADERS),
                "http.client": through_http_client,
            }
            sent = client_costs(senders, args.requests, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"Requests per image in one cold S7 run ({SHARED_BASE.describe()}):")
    print("\n".join(counts))
    print(f"The registry's CPU per request ({args.requests} of each, one at a time):")
    for name, milliseconds in served.items():
        print(f"  {name:26s} {milliseconds:5.2f} ms")
    print(f"The client's CPU per manifest HEAD (minimum of {args.rounds} rounds):")
    for name, microseconds in sent.items():
        print(f"  {name:26s} {microseconds:5.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
