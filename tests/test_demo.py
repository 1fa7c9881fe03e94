"""The README's end-to-end commands keep working: the demo on layouts alone, and with two
local registries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.registry import REGISTRY_BINARY, require_binary

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
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Plan: 3 to create, 0 unchanged, signatures: 1 to create" in result.stdout
    assert "Apply: 3 created, 0 unchanged, 0 conflicts, 0 failed." in result.stdout
    assert "Plan: 0 to create, 3 unchanged, signatures: 0 to create, 1 unchanged." in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_the_demo_needs_nothing_but_python(tmp_path: Path) -> None:
    """No registry binary, no skopeo: with an empty PATH, it mirrors layout to layout."""
    empty = tmp_path / "bin"
    empty.mkdir()
    result = demo(path=str(empty))
    assert_the_whole_job(result)
    assert "Sources: oci:" in result.stdout


@pytest.mark.registry
def test_the_demo_with_two_local_registries() -> None:
    require_binary(REGISTRY_BINARY, "the distribution registry")
    result = demo("--registries")
    assert_the_whole_job(result)
