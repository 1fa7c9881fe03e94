"""The whole job on one machine: two local registries, example images, plan, apply, plan.

Run from the repository root after the README's install steps:

    python examples/demo.py

It starts two throw-away distribution registries on 127.0.0.1 (source and target), pushes
example images into the source (the same generator the tests use), then runs the real
``imagesync`` commands and prints them with their output. Everything stops when it ends.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.images import push_cosign_signature, push_image  # noqa: E402
from tests.harness.registry import RegistryServer  # noqa: E402


def step(title: str, *args: str, cwd: Path) -> int:
    print(f"\n=== {title}\n$ imagesync {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "imagesync", *args], cwd=cwd, check=False)
    print(f"(exit code {result.returncode})", flush=True)
    return result.returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="imagesync-demo-") as tmp:
        work = Path(tmp)
        with RegistryServer(work / "source") as source, RegistryServer(work / "target") as target:
            print(f"source registry: {source.host}\ntarget registry: {target.host}")
            app = push_image(source.host, "demo/app", "1.0", layer_size=256 * 1024)
            push_cosign_signature(source.host, "demo/app", app.digest)
            push_image(source.host, "demo/legacy", "2.3", kind="docker", seed=2)
            tool = push_image(
                source.host, "demo/tool", "0.9", platforms=[("linux", "amd64")], index=False, seed=3
            )
            images = work / "external-images.yaml"
            images.write_text(
                f"target: {target.host}/mirror\n"
                "images:\n"
                f'- source: "{source.host}/demo/app:1.0"          # OCI index, signed\n'
                f'- source: "{source.host}/demo/legacy:2.3"       # Docker manifest list\n'
                f'- source: "{source.host}/demo/tool@{tool.digest}"\n'
                '  tag: "0.9-v1"                                  # pinned by digest\n'
                "  amd64Only: true                                # single-platform image\n",
                encoding="utf-8",
            )
            print(f"\n=== images file\n{images.read_text()}")
            failed = step("validate (offline)", "validate", "-i", images.name, cwd=work)
            failed |= step("plan", "plan", "-i", images.name, "-o", "plan.json", cwd=work) == 1
            failed |= step("apply the saved plan", "apply", "plan.json", cwd=work)
            failed |= step(
                "plan again: everything is unchanged", "plan", "-i", images.name, cwd=work
            )
            return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
