"""The README's end-to-end command keeps working, and the plan its picture shows reads well."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.registry import REGISTRY_BINARY, require_binary
from tests.test_markdown import assert_rows_fit, fences

pytestmark = pytest.mark.registry
DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_plans_applies_meets_a_republished_tag_and_pastes_its_fix(tmp_path: Path) -> None:
    require_binary(REGISTRY_BINARY, "the distribution registry")
    markdown = tmp_path / "review.md"
    result = subprocess.run(
        [sys.executable, str(DEMO), "--markdown", str(markdown)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Plan: 3 to create, 0 unchanged, signatures: 1 to create" in out
    assert "Apply: 3 created, 0 unchanged, 0 conflicts, 0 failed." in out
    assert "Plan: 0 to create, 3 unchanged, signatures: 0 to create, 1 unchanged." in out
    # Upstream re-published demo/legacy:2.3: a conflict that says its fix, then a skip.
    assert "Plan: 1 to create, 2 unchanged, 1 conflict, 1 error" in out
    assert "fix: put this in place of line 4 of external-images.yaml:" in out
    assert "Plan: 1 to create, 3 unchanged, signatures: 0 to create, 1 unchanged." in out
    assert "Apply: 1 created, 3 unchanged, 0 conflicts, 0 failed." in out
    assert "Traceback" not in out + result.stderr

    # The review plan's Markdown: no row too wide to read, the fix a block to copy.
    text = markdown.read_text(encoding="utf-8")
    assert_rows_fit(text)
    (fix,) = fences(text)
    assert fix.startswith('  - source: "') and "/demo/legacy@sha256:" in fix
    assert fix.endswith('    tag: "2.3"\n')
