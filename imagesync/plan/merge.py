"""The shards of one plan put together again, for one review (``show``, ``diff``).

A matrix of N plan jobs (``plan --shard K/N``) writes N plan files; reviewers read one plan.
The shards must be one plan's: one images file, one target, every shard exactly once, each
holding only its own entries (:func:`~imagesync.plan.checks.check_shard`); anything else is
refused with every reason at once (:func:`~imagesync.images.shard.check_pieces`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from imagesync.errors import PlanRejected
from imagesync.images.shard import Piece, check_pieces
from imagesync.inputfile import UnreadableInput, json_files
from imagesync.plan.checks import check_shard
from imagesync.plan.document import LoadedPlan, Plan, is_report, read_plan_document


def read_plans(paths: list[str]) -> LoadedPlan:
    """One plan from plan files (a directory stands for the plans in it, at any depth; apply
    reports beside them are not plans): the file itself when it is one, else its shards put
    together."""
    try:
        files = json_files(paths)
    except UnreadableInput as error:
        raise PlanRejected(error.reason, "give the plan files, or a directory of them") from None
    plans = []
    for path, in_directory in files:
        document = read_plan_document(path)
        if in_directory and is_report(document):
            continue
        plans.append((path, LoadedPlan.from_document(document, path)))
    if not plans:
        raise PlanRejected(f"no plan among {', '.join(paths)}", "give the plan files")
    if len(plans) == 1:
        return plans[0][1]
    return merge_plans([(where, loaded.plan) for where, loaded in plans])


def merge_plans(plans: Sequence[tuple[str, Plan]]) -> LoadedPlan:
    """The plan that the shards ``plans`` (where each was read, and the plan) are parts of."""
    if len(plans) == 1:
        return LoadedPlan(plans[0][1])
    check_pieces(
        [
            Piece(where, plan.target_prefix, plan.images_file.sha256, plan.shard)
            for where, plan in plans
        ]
    )
    for _, plan in plans:
        check_shard(plan)
    first = plans[0][1]
    changes = sorted((c for _, plan in plans for c in plan.changes), key=lambda c: c.entry)
    warnings = dict.fromkeys(w for _, plan in plans for w in plan.warnings)
    repositories = {r.repository: r for _, plan in plans for r in plan.repositories}
    merged = replace(
        first,
        created=min(plan.created for _, plan in plans),
        changes=tuple(changes),
        repositories=tuple(repositories[name] for name in sorted(repositories)),
        warnings=tuple(warnings),
        shard=None,
    )
    return LoadedPlan(merged, merged_from=len(plans))
