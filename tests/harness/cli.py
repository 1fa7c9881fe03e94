"""imagesync's command line run in-process, and the images files the tests give it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from imagesync.cli import main


def run(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``imagesync ARGS``."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_images(tmp_path: Path, target: str, entries: str) -> Path:
    """``external-images.yaml`` in ``tmp_path`` with ``target:`` and the ``images:`` lines."""
    path = tmp_path / "external-images.yaml"
    path.write_text(f"target: {target}\nimages:\n{entries}", encoding="utf-8")
    return path
