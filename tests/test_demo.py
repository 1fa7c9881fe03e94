"""The README's end-to-end commands keep working: the demo on layouts alone, and with two
local registries; and the review plan the README's picture shows reads well."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.registry import REGISTRY_BINARY, require_binary
from tests.test_markdown import assert_rows_fit, fences
from tests.test_markdown_inert import assert_inert

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def demo(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "NO_COLOR": "1"}
    if path is not None:
        environment["PATH"] = path
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )


def assert_the_whole_job(result: subprocess.CompletedProcess[str]) -> None:
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Plan: 3 to create, 0 to skip, signatures: 1 to create" in out
    assert "Apply: 3 created, 0 skipped, 0 conflicts, 0 failed." in out
    assert "Plan: 0 to create, 3 to skip, signatures: 0 to create, 1 to skip." in out
    # Upstream re-published legacy:2.3: a conflict that says its fix; pasted, it is a skip.
    assert "Plan: 1 to create, 2 to skip, 1 conflict, 1 error" in out
    assert "fix: put this in place of line 4 of external-images.yaml:" in out
    assert "Plan: 1 to create, 3 to skip, signatures: 0 to create, 1 to skip." in out
    assert "Apply: 1 created, 3 skipped, 0 conflicts, 0 failed." in out
    assert "Traceback" not in out + result.stderr
    assert_lines_read_at_a_glance(out)


DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")


def assert_lines_read_at_a_glance(out: str) -> None:
    """No line longer than 120 characters, apart from digests (``sha256:<hex>``, and the
    signature tags named by them, ``sha256-<hex>.sig``); the demo's folder named once, at the
    start: the paths in it are relative to it."""
    long = [line for line in out.splitlines() if len(DIGEST.sub("", line)) > 120]
    assert not long, "\n".join(long)
    first, *rest = out.splitlines()
    folder = re.fullmatch(r"The demo's folder: (\S+) \(gone when it ends\);.*", first)
    assert folder is not None, first
    assert not [line for line in rest if folder[1] in line]
    assert not Path(folder[1]).exists()


def assert_the_review_reads_well(markdown: Path) -> None:
    """The pull-request comment of the demo's review plan: within GitHub's limit, the conflict
    and the error named, nothing in it active; no table row too wide to read; the fix a YAML
    block to copy, outside any table."""
    text = markdown.read_text(encoding="utf-8")
    assert len(text) < 65_536
    assert "/legacy:2.3`" in text and "/aap:1.0`" in text  # each named, as a code span
    assert_inert(text)
    assert_rows_fit(text)
    (fix,) = fences(text)
    assert fix.startswith('- source: "') and "/legacy@sha256:" in fix
    assert fix.endswith('  tag: "2.3"\n')


def test_the_demo_needs_nothing_but_python(tmp_path: Path) -> None:
    """No registry binary, no skopeo: with an empty PATH, it mirrors layout to layout."""
    empty = tmp_path / "bin"
    empty.mkdir()
    result = demo("--markdown", str(tmp_path / "review.md"), path=str(empty))
    assert_the_whole_job(result)
    assert "Sources: oci:disk (a layout tree" in result.stdout
    assert "\n+ create   oci:mirror/demo.example/app:1.0\n" in result.stdout
    assert "\n    reason: source oci:disk/demo.example/aap:1.0 not found" in result.stdout
    assert_the_review_reads_well(tmp_path / "review.md")


@pytest.mark.registry
def test_the_demo_with_two_local_registries(tmp_path: Path) -> None:
    require_binary(REGISTRY_BINARY, "the distribution registry")
    result = demo("--registries", "--markdown", str(tmp_path / "review.md"))
    assert_the_whole_job(result)
    assert_the_review_reads_well(tmp_path / "review.md")
