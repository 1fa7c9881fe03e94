"""The README's end-to-end command keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.registry import REGISTRY_BINARY, require_binary

pytestmark = pytest.mark.registry
DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_plans_applies_and_then_has_nothing_to_do() -> None:
    require_binary(REGISTRY_BINARY, "the distribution registry")
    result = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Plan: 3 to create, 0 unchanged, signatures: 1 to create" in result.stdout
    assert "Apply: 3 created, 0 unchanged, 0 conflicts, 0 failed." in result.stdout
    assert "Plan: 0 to create, 3 unchanged, signatures: 0 to create, 1 unchanged." in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
