"""The whole job on one machine, with nothing but Python and imagesync installed.

Run from the repository root after ``pip install .``::

    python examples/demo.py               # OCI image layouts on disk: no registry, no network
    python examples/demo.py --registries  # two throw-away local registries (docker-registry)

By default it writes example images (``demo_images.py``: a multi-platform OCI index, a Docker
manifest list, a single-platform image, a signature) into a source tree of OCI image layouts, as
the connected side of an air gap exports them (``imagesync --target oci:DIR``); then mirrors
them with ``imagesync plan --source-layout … --target oci:…``, ``apply`` and ``plan`` again
(everything is ``skip``). With ``--registries`` it does the same between two distribution
registries on 127.0.0.1 instead. Every command is printed with its output; everything it made
is gone when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from demo_images import Layouts, Registry, example_images, local_registry


def step(title: str, *args: str, cwd: Path) -> int:
    print(f"\n=== {title}\n$ imagesync {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "imagesync", *args], cwd=cwd, check=False)
    print(f"(exit code {result.returncode})", flush=True)
    return result.returncode


def images_file(work: Path, prefix: str, target: str) -> Path:
    tool = next(image for image in example_images(prefix) if image.repository.endswith("/tool"))
    path = work / "external-images.yaml"
    path.write_text(
        f"target: {target}\n"
        "images:\n"
        f'- source: "{prefix}/app:1.0"          # OCI index, signed\n'
        f'- source: "{prefix}/legacy:2.3"       # Docker manifest list\n'
        f'- source: "{prefix}/tool@{tool.digest}"\n'
        '  tag: "0.9-v1"                        # pinned by digest\n'
        "  amd64Only: true                      # single-platform image\n",
        encoding="utf-8",
    )
    print(f"\n=== images file\n{path.read_text()}")
    return path


def run(work: Path, images: Path, *where: str) -> int:
    """validate, plan, apply the saved plan, plan again; 1 when a step failed."""
    failed = step("validate (offline)", "validate", "-i", images.name, *where[-2:], cwd=work)
    plan = ("plan", "-i", images.name, *where)
    failed |= step("plan", *plan, "-o", "plan.json", cwd=work) == 1
    failed |= step("apply the saved plan", "apply", "plan.json", cwd=work)
    failed |= step("plan again: everything is unchanged", *plan, cwd=work)
    return 1 if failed else 0


def with_layouts(work: Path) -> int:
    source = work / "disk"
    for image in example_images():
        # Where --target oci:disk puts it: demo.example/app is disk/demo.example/app.
        Layouts(source).write(image, image.repository)
    print(f"source: a tree of OCI image layouts in {source} (as an export wrote it)")
    images = images_file(work, "demo.example", "registry.internal/mirror")
    return run(work, images, "--source-layout", "disk", "--target", "oci:mirror")


def with_registries(work: Path) -> int:
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(local_registry())
        target = stack.enter_context(local_registry())
        print(f"source registry: {source}\ntarget registry: {target}")
        for image in example_images(f"{source}/demo"):
            Registry(source).write(image, image.repository.split("/", 1)[1])
        images = images_file(work, f"{source}/demo", f"{target}/mirror")
        return run(work, images, "--target", f"{target}/mirror")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--registries",
        action="store_true",
        help="mirror between two local distribution registries instead of layouts",
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imagesync-demo-") as tmp:
        return (with_registries if arguments.registries else with_layouts)(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
