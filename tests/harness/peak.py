"""imagesync run in a process of its own, and that process's peak memory: its own, measured
from inside (VmHWM as it exits), never a sum or a maximum over other processes (a registry,
skopeo, or whatever else the test process started before it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagesync.stores.connection import BASE_DELAY_ENV

# Runs imagesync's CLI and, as the process exits, writes its peak RSS (VmHWM, KiB) to the file
# named by IMAGESYNC_TEST_PEAK.
_MEASURED = """
import atexit, os, re, sys

def _peak():
    with open("/proc/self/status") as status:
        kib = re.search(r"^VmHWM:\\s+(\\d+) kB", status.read(), re.MULTILINE).group(1)
    with open(os.environ["IMAGESYNC_TEST_PEAK"], "w") as out:
        out.write(kib)

atexit.register(_peak)
from imagesync.cli import main
sys.argv[0] = "imagesync"
main()
"""


def measured(
    tmp_path: Path, *args: str, timeout: float = 240
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``imagesync ARGS`` in its own process; its result and its peak RSS in KiB."""
    peak = tmp_path / "peak"
    env = {
        **os.environ,
        "IMAGESYNC_TEST_PEAK": str(peak),
        BASE_DELAY_ENV: "0.01",
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return result, int(peak.read_text())
