"""Start-up is cheap: commands that talk to no registry load no network code (issue 15).

Each command runs in a fresh interpreter, which then lists the modules it loaded: an import of
requests, urllib3 or oras (or of imagesync's stores or applier) from ``--help``,
``validate`` or ``show`` fails here, wherever in the package it crept in. ``--help`` also
loads no jsonschema: it takes longer to import than click and yaml together, and help has
nothing to validate. (What start-up costs in time is measured by ``benchmarks/run.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.cosign import new_key, public_pem
from tests.harness.images import push_image
from tests.harness.layouts import LayoutPusher
from tests.test_plan_document import make_plan

ROOT = Path(__file__).resolve().parent.parent
NETWORK = ("requests", "urllib3", "oras")
MACHINERY = ("imagesync.stores.registry", "imagesync.stores.layout", "imagesync.apply.applier")

# Runs the command line in this interpreter and prints the modules loaded by the end.
PROBE = """
import json, sys
sys.argv = ["imagesync", *json.loads(sys.argv[1])]
from imagesync.cli import main
try:
    main()
except SystemExit as exit_:
    code = exit_.code or 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded(*args: str, code: int = 0, env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["code"] == code, result.stdout + result.stderr
    return set(report["modules"])


def offenders(modules: set[str], *forbidden: str) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f"{f}.") for f in forbidden))


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    make_plan().write(path)
    return path


def test_help_loads_neither_the_network_stack_nor_jsonschema() -> None:
    for args in (["--help"], ["sync", "--help"], ["--version"]):
        modules = loaded(*args)
        assert offenders(modules, *NETWORK, *MACHINERY, "jsonschema") == [], args
        # Nor the machinery's offline parts: help needs click and the defaults it shows.
        assert offenders(modules, "imagesync.plan.planner", "imagesync.images.file") == [], args


def test_validate_loads_no_network_code() -> None:
    modules = loaded("validate", "-i", str(ROOT / "examples" / "external-images.yaml"))
    assert "imagesync.images.file" in modules  # it did validate
    assert offenders(modules, *NETWORK, *MACHINERY) == []


def test_show_loads_no_network_code(plan_file: Path) -> None:
    for fmt in ("text", "json", "markdown"):
        # Exit 1: show exits as plan did, and the plan holds an error.
        modules = loaded("show", str(plan_file), "--format", fmt, code=1)
        assert "imagesync.render" in modules
        assert offenders(modules, *NETWORK, *MACHINERY) == [], fmt


def test_the_command_exits_with_its_code_and_all_its_output() -> None:
    """``python -m imagesync`` (like the console script) ends with os._exit: what it printed
    must be flushed and its exit code kept."""

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imagesync", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    shown = command("validate", "-i", str(ROOT / "examples" / "external-images.yaml"))
    assert shown.returncode == 0 and shown.stdout.endswith("valid\n"), shown
    bad = command("validate", "-i", str(ROOT / "examples" / "bad" / "several-problems.yaml"))
    assert bad.returncode == 1 and "not valid" in bad.stderr, bad
    usage = command("plan", "--parallelism", "0")
    assert usage.returncode == 2 and "--parallelism" in usage.stderr, usage


def test_a_plan_between_layouts_loads_no_network_code(tmp_path: Path) -> None:
    """An air-gapped side, layout to layout, never loads the HTTP stack."""
    source = tmp_path / "source"
    push_image(LayoutPusher(source), "demo.example/app", "1.0")
    images = tmp_path / "images.yaml"
    images.write_text('images:\n- source: "demo.example/app:1.0"\n', encoding="utf-8")
    target = f"oci:{tmp_path / 'mirror'}"
    modules = loaded("plan", "-i", str(images), "--source-layout", str(source), "-r", target)
    assert "imagesync.stores.layout.store" in modules  # it did plan, from the layout
    assert offenders(modules, *NETWORK, "imagesync.stores.registry") == []


def test_a_run_without_keys_loads_no_cryptography(tmp_path: Path) -> None:
    """cryptography and PyNaCl load only when a key is named: not for a registries config
    that names none (most users have one, for mirrors and TLS)."""
    source = tmp_path / "source"
    push_image(LayoutPusher(source), "demo.example/app", "1.0")
    images = tmp_path / "images.yaml"
    images.write_text('images:\n- source: "demo.example/app:1.0"\n', encoding="utf-8")
    config = tmp_path / "registries.yaml"
    config.write_text(
        'registries:\n  demo.example:\n    mirrors: ["mirror.example"]\n', encoding="utf-8"
    )
    plan = ("plan", "-i", str(images), "--source-layout", str(source))
    plan += ("-r", f"oci:{tmp_path / 'mirror'}", "--registries-config", str(config))
    crypto = ("cryptography", "nacl", "imagesync.signing")
    modules = loaded(*plan)
    assert "imagesync.stores.layout.store" in modules  # it did plan
    assert offenders(modules, *crypto) == []
    # The same run with a key to verify with does load them (the check above can fail).
    key = tmp_path / "cosign.pub"
    key.write_bytes(public_pem(new_key()))
    assert offenders(loaded(*plan, "--verify-key", str(key), code=1), *crypto) != []


def test_markdown_is_rendered_only_for_a_step_summary(tmp_path: Path) -> None:
    """Outside GitHub Actions nobody reads the Markdown: a sync renders none (its module and
    the rendering of plan and report cost a run's start-up and exit time)."""
    source = tmp_path / "source"
    push_image(LayoutPusher(source), "demo.example/app", "1.0")
    images = tmp_path / "images.yaml"
    images.write_text('images:\n- source: "demo.example/app:1.0"\n', encoding="utf-8")
    sync = ("sync", "-i", str(images), "--source-layout", str(source))
    sync += ("-r", f"oci:{tmp_path / 'mirror'}")
    modules = loaded(*sync)
    assert "imagesync.apply.applier" in modules  # it did apply
    assert offenders(modules, "imagesync.render.markdown") == []
    summary = tmp_path / "summary.md"
    modules = loaded(*sync, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert "imagesync.render.markdown" in modules
    assert "# " in summary.read_text(encoding="utf-8")
