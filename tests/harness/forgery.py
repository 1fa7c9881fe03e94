"""Forging a plan artifact the way an attacker would: anyone can recompute a checksum.

Tests of plan integrity edit a plan document and then :func:`reseal` it, so that what stops
the forgery is the check under test, not the checksum.
"""

from __future__ import annotations

from typing import Any

from imagesync.plan.document import Action, Plan, checksum


def reseal(document: dict[str, Any], *, check: bool = True) -> dict[str, Any]:
    """Fix the summary and recompute the checksum of an edited plan document (in place).

    With ``check``, the forgery must then pass every check of the document itself (schema,
    checksum, summary, names that parse), as a careful forger's would.
    """
    counts = {action.value: 0 for action in Action}
    for change in document["changes"]:
        counts[change["action"]] = counts.get(change["action"], 0) + 1
    document["summary"] = counts
    document["checksum"] = checksum(document)
    if check:
        Plan.from_document(document)
    return document
