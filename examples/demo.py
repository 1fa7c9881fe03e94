"""The whole job on one machine: two local registries, example images, plan, apply, and what
happens when upstream re-publishes a tag.

Run from the repository root after the README's install steps:

    python examples/demo.py [--markdown FILE]

It starts two throw-away distribution registries on 127.0.0.1 (source and target), pushes
example images into the source (the same generator the tests use), then runs the real
``imagesync`` commands and prints them with their output:

1. validate, plan, apply, plan again (everything is unchanged);
2. upstream re-publishes ``demo/legacy:2.3``, and the images file gains two entries (one with
   a typo): the plan shows the conflict with the fix to paste, the error and the new image;
3. the fix pasted (as a reviewer would, from the plan), the typo removed: plan, apply.

``--markdown FILE`` writes the Markdown of step 2's plan (what a pull request's reviewers
see) to FILE; ``scripts/plan-screenshot.py`` takes the README's picture of it. Everything
stops when it ends.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.images import push_cosign_signature, push_image  # noqa: E402
from tests.harness.registry import RegistryServer  # noqa: E402


def step(title: str, *args: str, cwd: Path, expect: int = 0) -> bool:
    """Run ``imagesync ARGS``; True when it exits as expected."""
    print(f"\n=== {title}\n$ imagesync {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "imagesync", *args], cwd=cwd, check=False)
    print(f"(exit code {result.returncode})", flush=True)
    return result.returncode == expect


def paste_fixes(images: Path, plan: Path) -> None:
    """What a reviewer does with the plan: each fix in place of the lines it names."""
    lines = images.read_text(encoding="utf-8").splitlines(keepends=True)
    changes = json.loads(plan.read_text(encoding="utf-8"))["changes"]
    fixes = [c["fix"]["entry"] for c in changes if "entry" in c.get("fix", {})]
    for fix in sorted(fixes, key=lambda f: -f["first_line"]):
        lines[fix["first_line"] - 1 : fix["last_line"]] = [fix["yaml"]]
    images.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, help="write the review plan's Markdown here")
    markdown = parser.parse_args(argv).markdown
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
                f'  - source: "{source.host}/demo/app:1.0"        # OCI index, signed\n'
                f'  - source: "{source.host}/demo/legacy:2.3"     # Docker manifest list\n'
                f'  - source: "{source.host}/demo/tool@{tool.digest}"\n'
                '    tag: "0.9-v1"                                # pinned by digest\n'
                "    amd64Only: true                              # single-platform image\n",
                encoding="utf-8",
            )
            print(f"\n=== images file\n{images.read_text()}")
            ok = step("validate (offline)", "validate", "-i", images.name, cwd=work)
            ok &= step("plan", "plan", "-i", images.name, "-o", "plan.json", cwd=work)
            ok &= step("apply the saved plan", "apply", "plan.json", cwd=work)
            ok &= step("plan again: everything is unchanged", "plan", "-i", images.name, cwd=work)

            print("\n=== upstream re-publishes demo/legacy:2.3; the file gains two images")
            push_image(source.host, "demo/legacy", "2.3", kind="docker", seed=4)
            push_image(source.host, "demo/new", "1.0", seed=5)
            with images.open("a", encoding="utf-8") as more:
                more.write(
                    f'  - source: "{source.host}/demo/new:1.0"\n'
                    f'  - source: "{source.host}/demo/aap:1.0"        # a typo\n'
                )
            ok &= step(
                "plan: the conflict says its fix",
                *("plan", "-i", images.name, "-o", "review.json"),
                cwd=work,
                expect=1,
            )
            if markdown is not None:
                shown = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "imagesync",
                        "show",
                        "review.json",
                        "--format",
                        "markdown",
                    ],
                    cwd=work,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                markdown.write_text(shown.stdout, encoding="utf-8")
                print(f"(the plan's Markdown is in {markdown})")

            print("\n=== the fix pasted from the plan, the typo removed")
            paste_fixes(images, work / "review.json")
            text = images.read_text(encoding="utf-8").splitlines(keepends=True)
            images.write_text("".join(t for t in text if "demo/aap" not in t), encoding="utf-8")
            print(images.read_text())
            ok &= step("plan: the conflict is a skip now", "plan", "-i", images.name, cwd=work)
            ok &= step("apply", "apply", "-i", images.name, cwd=work)
            return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
