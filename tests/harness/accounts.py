"""One account of blobs: what a plan says apply will transfer is what apply reports.

A plan's figures are per create: the blobs the target lacks (``blobs_to_transfer``) and of them
those that come by mount (``blobs_to_mount``). Applied at once to the stores it was made
against, the plan's copies are apply's ``copied`` and its mounts apply's ``mounted``, blob for
blob and byte for byte (which image copies a shared blob may differ; the totals may not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def assert_apply_counts_as_planned(plan: Mapping[str, Any], report: Mapping[str, Any]) -> None:
    """``report`` (apply --format json) of ``plan`` (the plan document as JSON) copied and
    mounted what the plan said it would."""
    creates = [c for c in plan["changes"] if c["action"] == "create"]
    planned = {
        "copied": sum(c["blobs_to_transfer"] - c.get("blobs_to_mount", 0) for c in creates),
        "mounted": sum(c.get("blobs_to_mount", 0) for c in creates),
        "bytes_copied": sum(c["bytes_to_transfer"] - c.get("bytes_to_mount", 0) for c in creates),
    }
    applied = {
        "copied": report["blobs"]["copied"],
        "mounted": report["blobs"]["mounted"],
        "bytes_copied": report["bytes_copied"],
    }
    assert applied == planned, f"plan said {planned}, apply did {applied}"
