"""skopeo as the independent checker: what imagesync pushed must inspect and copy cleanly."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tests.harness.registry import require_binary

SKOPEO = "/usr/bin/skopeo"


def _run(*args: str) -> bytes:
    binary = require_binary(SKOPEO, "skopeo")
    result = subprocess.run([binary, *args], capture_output=True, timeout=300, check=False)
    if result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{result.stderr.decode()}")
    return result.stdout


def inspect_raw(reference: str, *, tls_verify: bool = False) -> bytes:
    """The manifest bytes exactly as the registry serves them."""
    return _run(
        "inspect", "--raw", f"--tls-verify={str(tls_verify).lower()}", f"docker://{reference}"
    )


def raw_digest(reference: str) -> str:
    return "sha256:" + hashlib.sha256(inspect_raw(reference)).hexdigest()


def copy_to_dir(reference: str, directory: Path) -> None:
    """Copy every platform into a directory; skopeo verifies every blob's digest on the way."""
    _run(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{reference}",
        f"dir:{directory}",
    )


def sync(source_yaml: Path, destination: str) -> None:
    _run(
        "sync",
        "--all",
        "--preserve-digests",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        str(source_yaml),
        destination,
    )
