"""The whole job on one machine, with nothing but Python and imagesync installed.

``scripts/demo`` runs it (making the venv the first time); with imagesync installed::

    python examples/demo.py               # OCI image layouts on disk: no registry, no network
    python examples/demo.py --registries  # two throw-away local registries (docker-registry)

By default it writes example images (``demo_images.py``: a multi-platform OCI index, a Docker
manifest list, a single-platform image, a signature) into a source tree of OCI image layouts, as
the connected side of an air gap exports them (``imagesync --target oci:DIR``); then mirrors
them with ``imagesync plan --source-layout … --target oci:…``, ``apply`` and ``plan`` again
(everything is ``skip``). With ``--registries`` it does the same between two distribution
registries on 127.0.0.1 instead.

Then upstream re-publishes ``legacy:2.3`` and the images file gains two entries (one with a
typo): the plan shows the conflict with the fix to paste, the error and the new image; the fix
is pasted (as a reviewer would, from the plan), the typo removed, and it plans and applies
again. ``--markdown FILE`` writes that review plan's Markdown (what a pull request's reviewers
see) to FILE: ``scripts/plan-screenshot.py`` takes the README's picture of it.

It works in a folder of its own (a temporary one, gone when it ends) and prints every command
with its output, the paths in that folder relative to it (``oci:mirror/demo.example/app:1.0``),
a line longer than 120 characters (a digest counted as its first 12 digits) cut at spaces:
each reads at a glance.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from demo_images import Image, Layouts, Registry, example_images, later_images, local_registry

WIDTH = 120
DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")
LABEL = re.compile(r" *(?:[a-z]+: )?")


def width(line: str) -> int:
    """A line's length with each digest counted as its first 12 digits: one cannot be cut, and
    is read by its first digits."""
    return len(DIGEST.sub("sha256:" + "0" * 12, line))


def wrapped(line: str) -> list[str]:
    """``line``, cut at spaces into lines of at most WIDTH characters (as :func:`width` counts);
    those after the first indented under the text after its label (``    reason: ``)."""
    if width(line) <= WIDTH:
        return [line]
    label = LABEL.match(line)
    head = label.end() if label else 0
    first, *words = line[head:].split(" ")
    lines, current = [], line[:head] + first
    for word in words:
        if width(f"{current} {word}") > WIDTH:
            lines.append(current)
            current = " " * head + word
        else:
            current += " " + word
    return [*lines, current]


class Folder:
    """The demo's own folder: imagesync says the absolute paths of what it reads and writes,
    shown relative to the folder (the commands ran in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._prefixes = sorted({f"{path}/", f"{path.resolve()}/"}, key=len, reverse=True)

    def relative(self, text: str) -> str:
        for prefix in self._prefixes:
            text = text.replace(prefix, "")
        return text

    def show(self, text: str) -> None:
        for line in self.relative(text).splitlines():
            print("\n".join(wrapped(line)), flush=True)

    def imagesync(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "imagesync", *args],
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def step(title: str, *args: str, cwd: Folder) -> int:
    """The command, its output (stdout and stderr, as they come) and its exit code."""
    print(f"\n=== {title}\n$ imagesync {shlex.join(args)}", flush=True)
    with cwd.imagesync(*args) as process:
        assert process.stdout is not None
        for line in process.stdout:
            cwd.show(line)
    print(f"(exit code {process.returncode})", flush=True)
    return process.returncode


def paste_fixes(images: Path, plan: Path) -> None:
    """What a reviewer does with the plan: each fix in place of the lines it names."""
    lines = images.read_text(encoding="utf-8").splitlines(keepends=True)
    changes = json.loads(plan.read_text(encoding="utf-8"))["changes"]
    fixes = [c["fix"]["entry"] for c in changes if "entry" in c.get("fix", {})]
    for fix in sorted(fixes, key=lambda f: -f["first_line"]):
        lines[fix["first_line"] - 1 : fix["last_line"]] = [fix["yaml"]]
    images.write_text("".join(lines), encoding="utf-8")


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


def run(
    work: Folder,
    images: Path,
    upstream: Callable[[Image], None],
    prefix: str,
    where: tuple[str, ...],
    markdown: Path | None,
) -> int:
    """validate, plan, apply the saved plan, plan again; then a re-published tag and two new
    entries, planned, fixed and applied. 1 when a step did not end as it should."""
    failed = step("validate (offline)", "validate", "-i", images.name, *where[-2:], cwd=work)
    plan = ("plan", "-i", images.name, *where)
    failed |= step("plan", *plan, "-o", "plan.json", cwd=work) == 1
    failed |= step("apply the saved plan", "apply", "plan.json", cwd=work)
    failed |= step("plan again: every image is a skip", *plan, cwd=work)

    print("\n=== upstream re-publishes legacy:2.3; the images file gains two entries")
    for image in later_images(prefix):
        upstream(image)
    with images.open("a", encoding="utf-8") as more:
        more.write(f'- source: "{prefix}/new:1.0"\n- source: "{prefix}/aap:1.0"    # a typo\n')
    review = ("plan: the conflict says its fix", *plan, "-o", "review.json")
    failed |= step(*review, cwd=work) != 1  # a conflict and an error: exit code 1
    if markdown is not None:
        # Bounded as the pull-request comment asks for it (GitHub's limit is 65,536).
        comment = ("show", "review.json", "--format", "markdown", "--max-bytes", "60000")
        with work.imagesync(*comment) as shown:
            review_markdown = shown.communicate()[0]
        failed |= shown.returncode != 1  # show exits as plan did: the plan holds a conflict
        markdown.write_text(work.relative(review_markdown), encoding="utf-8")
        print(f"(the plan's Markdown is in {markdown})")

    print("\n=== the fix pasted from the plan, the typo removed")
    paste_fixes(images, work.path / "review.json")
    text = images.read_text(encoding="utf-8").splitlines(keepends=True)
    images.write_text("".join(t for t in text if "/aap:" not in t), encoding="utf-8")
    print(images.read_text())
    failed |= step("plan: the conflict is a skip now", *plan, cwd=work)
    failed |= step("apply", "apply", "-i", images.name, *where, cwd=work)
    return 1 if failed else 0


def with_layouts(work: Folder, markdown: Path | None) -> int:
    source = Layouts(work.path / "disk")
    for image in example_images():
        # Where --target oci:disk puts it: demo.example/app is disk/demo.example/app.
        source.write(image, image.repository)
    print("source: a tree of OCI image layouts in disk/ (as an export wrote it)")
    images = images_file(work.path, "demo.example", "registry.internal/mirror")

    def upstream(image: Image) -> None:
        source.write(image, image.repository)

    where = ("--source-layout", "disk", "--target", "oci:mirror")
    return run(work, images, upstream, "demo.example", where, markdown)


def with_registries(work: Folder, markdown: Path | None) -> int:
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(local_registry())
        target = stack.enter_context(local_registry())
        print(f"source registry: {source}\ntarget registry: {target}")

        def upstream(image: Image) -> None:
            Registry(source).write(image, image.repository.split("/", 1)[1])

        for image in example_images(f"{source}/demo"):
            upstream(image)
        images = images_file(work.path, f"{source}/demo", f"{target}/mirror")
        where = ("--target", f"{target}/mirror")
        return run(work, images, upstream, f"{source}/demo", where, markdown)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--registries",
        action="store_true",
        help="mirror between two local distribution registries instead of layouts",
    )
    parser.add_argument("--markdown", type=Path, help="write the review plan's Markdown here")
    arguments = parser.parse_args()
    markdown = arguments.markdown.resolve() if arguments.markdown else None
    with tempfile.TemporaryDirectory(prefix="imagesync-demo-") as tmp:
        print(f"The demo's folder: {tmp} (gone when it ends); the paths below are in it.")
        run_demo = with_registries if arguments.registries else with_layouts
        return run_demo(Folder(Path(tmp)), markdown)


if __name__ == "__main__":
    sys.exit(main())
