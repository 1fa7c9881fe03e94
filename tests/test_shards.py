"""Shards (issue 20): ``--shard K/N`` splits an images file's work for N jobs, by target
repository, and the shards' plans and reports are put together again for one review.

What must hold: for any N, the shards' plans together are the unsharded plan (same changes,
same decisions), no target repository is in two shards, the split of an entry does not move
when unrelated entries come or go, and applying every shard lands what one apply lands. Shards
that are not one plan's are refused together, with every reason.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.errors import ImagesyncError
from imagesync.images.file import load_images_file
from imagesync.images.shard import Shard, shard_of
from imagesync.plan.diff import diff_plans
from imagesync.plan.document import ImagesFileInfo, Plan
from imagesync.plan.merge import merge_plans
from imagesync.plan.planner import make_plan
from imagesync.reference import parse_reference, parse_registry_prefix
from imagesync.stores.connection import ConnectionOptions, open_stores
from tests.harness.forgery import reseal
from tests.harness.images import ALL_MANIFEST_TYPES, push_cosign_signature, push_image
from tests.harness.plans import generated_plan

REALWORLD = sorted((Path(__file__).parent / "realworld").glob("*.yaml"))


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout, result.stderr


# -- the split ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shard"), [("0/1", Shard(0, 1)), ("2/3", Shard(2, 3)), (" 4 / 5 ", Shard(4, 5))]
)
def test_a_shard_is_k_of_n_counted_from_zero(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard
    assert str(shard) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["3/3", "1/0", "-1/2", "a/b", "1", "0/1001", "1/2/3", ""])
def test_a_shard_that_does_not_exist_is_a_usage_error(text: str, tmp_path: Path) -> None:
    with pytest.raises(ImagesyncError):
        Shard.parse(text)
    code, _, stderr = run("plan", "-i", str(tmp_path / "x.yaml"), "--shard", text)
    assert code == 2 and "--shard" in stderr


def test_a_repository_is_in_one_shard_and_stays_there_when_the_file_changes(
    tmp_path: Path,
) -> None:
    prefix = "reg.io/ext"
    images = load_images_file(REALWORLD[-1], prefix)
    repositories = {e.target.repository for e in images.entries}
    for count in range(1, 8):
        shards = [images.in_shard(Shard(k, count)) for k in range(count)]
        seen = [{e.target.repository for e in shard.entries} for shard in shards]
        assert sum(len(s) for s in seen) == len(repositories)  # each in exactly one
        assert set().union(*seen) == repositories
        assert sorted(e.index for s in shards for e in s.entries) == [
            e.index for e in images.entries
        ]
    # Unrelated entries before, between and after: every old entry keeps its shard.
    original = (REALWORLD[-1]).read_text(encoding="utf-8")
    more = "".join(f'  - source: "ghcr.io/other/app-{n}:1.{n}"\n' for n in range(40))
    grown = tmp_path / "grown.yaml"
    grown.write_text(original.replace("images:\n", "images:\n" + more, 1) + "\n" + more, "utf-8")
    bigger = load_images_file(grown, prefix)
    prefix_repo = parse_registry_prefix(prefix)
    for count in (2, 3, 5):
        before = {
            e.source_text: shard_of(prefix_repo, e.target.repository, count) for e in images.entries
        }
        after = {
            e.source_text: shard_of(prefix_repo, e.target.repository, count)
            for e in bigger.entries
            if e.source_text in before
        }
        assert after == before
    # The split depends on the path below the prefix, not on the prefix, nor on whether the
    # target is a registry or a tree of layouts.
    for other in ("other.example/mirror/x", f"oci:{tmp_path}/disk"):
        elsewhere = load_images_file(REALWORLD[-1], other)
        for count in (2, 3):
            assert [e.index for e in images.in_shard(Shard(1, count)).entries] == [
                e.index for e in elsewhere.in_shard(Shard(1, count)).entries
            ]


# -- shards that are not one plan's ------------------------------------------------------------


def shard_plans(plan: Plan, count: int) -> list[Plan]:
    return [plan.in_shard(Shard(k, count)) for k in range(count)]


def write(tmp_path: Path, name: str, plan: Plan) -> str:
    path = tmp_path / name
    plan.write(path)
    return str(path)


def test_the_shards_of_one_plan_show_as_that_plan(tmp_path: Path) -> None:
    whole = generated_plan(300)
    paths = [write(tmp_path, f"s{k}.json", p) for k, p in enumerate(shard_plans(whole, 4))]
    assert diff_plans(merge_plans([(p, Plan.read(p)) for p in paths]).plan, whole).same
    code, merged, _ = run("show", *paths, "--format", "json")
    assert code == 1  # as plan: the generated plan holds conflicts and errors
    assert json.loads(merged)["changes"] == json.loads(whole.to_json())["changes"]
    (tmp_path / "plans").mkdir()
    for k, plan in enumerate(shard_plans(whole, 4)):
        write(tmp_path / "plans", f"plan-{k}.json", plan)
    assert run("show", str(tmp_path / "plans"))[1] == run("show", *paths)[1]
    code, text, _ = run("show", str(tmp_path / "plans"))
    assert "Shards: all 4 of external-images.yaml" in text
    write(tmp_path, "whole.json", whole)
    code, _, _ = run("diff", str(tmp_path / "whole.json"), str(tmp_path / "plans"))
    assert code == 0


def test_shards_that_are_not_one_plans_are_refused_together(tmp_path: Path) -> None:
    whole = generated_plan(200)
    zero, one, two = shard_plans(whole, 3)
    other_file = replace(whole, images_file=ImagesFileInfo("x.yaml", "f" * 64)).in_shard(
        Shard(1, 3)
    )
    other_target = generated_plan(200, "reg.io/elsewhere")
    cases = {
        "another images file": ([zero, other_file, two], ["another images file than"]),
        "another target": (
            [zero, one, other_target.in_shard(Shard(2, 3))],
            ["targets reg.io/elsewhere"],
        ),
        "a shard missing": ([zero, two], ["shard 1 of 3 is missing"]),
        "a shard twice": ([zero, one, one, two], ["shard 1/3 is given 2 times"]),
        "a whole plan among them": ([zero, whole, two], ["is a whole plan", "1 of 3 is missing"]),
        "two counts": ([zero, *shard_plans(whole, 2)], ["different numbers of shards"]),
        "everything at once": (
            [zero, other_file, other_file],
            ["another images file", "given 2 times", "shard 2 of 3 is missing"],
        ),
    }
    for name, (plans, expected) in cases.items():
        paths = [write(tmp_path, f"{name}-{k}.json", p) for k, p in enumerate(plans)]
        code, stdout, stderr = run("show", *paths)
        assert code == 1 and not stdout, name
        assert "are not the shards of one plan" in stderr, name
        for words in expected:
            assert words in stderr, (name, stderr)


def test_a_shard_plan_that_holds_another_shards_entry_is_refused(tmp_path: Path) -> None:
    whole = generated_plan(100)
    zero, one = shard_plans(whole, 2)
    document = json.loads(zero.to_json())
    document["changes"].append(json.loads(one.to_json())["changes"][0])
    document["changes"].sort(key=lambda c: c["entry"])
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(reseal(document)), encoding="utf-8")
    code, _, stderr = run("show", str(forged), write(tmp_path, "one.json", one))
    assert code == 1 and "is in shard 1/2" in stderr
    code, _, stderr = run("apply", str(forged), "--target", whole.target_prefix)
    assert code == 1 and "is in shard 1/2" in stderr and "re-run plan" in stderr
    # A whole plan applied by shard: only that shard's entries, and the shard must match.
    code, _, stderr = run("apply", write(tmp_path, "zero.json", zero), "--shard", "1/2")
    assert code == 1 and "the plan is shard 0/2, not 1/2" in stderr


# -- against real registries -------------------------------------------------------------------


@pytest.mark.registry
def test_shards_plan_and_apply_what_one_plan_and_apply_do(
    source_registry, target_registry, tmp_path: Path
) -> None:
    src, dst = source_registry.host, target_registry.host
    here = src.replace(":", "-")
    signed = push_image(src, "team/signed", "1.0", seed=1)
    push_cosign_signature(src, "team/signed", signed.digest)
    for tag in ("1.0", "1.1", "1.2"):  # one repository, three tags: one shard
        push_image(src, "team/many", tag, seed=hash(tag) % 1000, base_layers=[4096], base_seed=7)
    for name in ("a", "b", "c", "d", "e"):
        push_image(src, f"vendor/{name}", "2.0", seed=ord(name), base_layers=[4096], base_seed=7)
    push_image(src, "team/same", "1.0", seed=40)
    push_image(src, "team/moved", "1.0", seed=41)
    for prefix in ("whole", "sharded"):
        push_image(dst, f"{prefix}/{here}/team/same", "1.0", seed=40)  # a skip
        push_image(dst, f"{prefix}/{here}/team/moved", "1.0", seed=99)  # a conflict
    entries = [
        "team/signed:1.0",
        "team/many:1.0",
        "team/many:1.1",
        "team/many:1.2",
        *(f"vendor/{n}:2.0" for n in "abcde"),
        "team/same:1.0",
        "team/moved:1.0",
        "team/missing:1.0",  # an error
        "team/signed:1.0",  # listed twice: synced once
    ]
    images = tmp_path / "external-images.yaml"
    images.write_text(
        "images:\n" + "".join(f'  - source: "{src}/{e}"\n' for e in entries), encoding="utf-8"
    )
    whole_file = load_images_file(images, f"{dst}/whole")
    stores = open_stores(ConnectionOptions(), parse_registry_prefix(f"{dst}/whole"))
    whole = make_plan(whole_file, stores)
    assert {c.action.value for c in whole.changes} == {"create", "skip", "conflict", "error"}
    for count in range(1, 6):
        shards = [make_plan(whole_file.in_shard(Shard(k, count)), stores) for k in range(count)]
        assert all(p.shard == Shard(k, count) for k, p in enumerate(shards))
        repositories = [{parse_reference(c.target).repository for c in p.changes} for p in shards]
        assert sum(len(r) for r in repositories) == len(set().union(*repositories)), count
        merged = merge_plans([(f"shard {p.shard}", p) for p in shards]).plan
        assert diff_plans(merged, whole).same, (count, diff_plans(merged, whole))
        assert [c.entry for c in merged.changes] == [c.entry for c in whole.changes]

    # One apply, and three jobs: plan --shard K/3 -o, apply each plan (-i checks it), reports.
    whole_target, sharded_target = f"{dst}/whole", f"{dst}/sharded"
    code, _, _ = run("apply", "-i", str(images), "--target", whole_target)
    assert code == 1  # the conflict and the error
    (tmp_path / "plans").mkdir()
    (tmp_path / "reports").mkdir()
    for k in range(3):
        plan_file = tmp_path / "plans" / f"plan-{k}.json"
        code, _, _ = run(
            "plan", "-i", str(images), "--target", sharded_target, "--shard", f"{k}/3",
            "-o", str(plan_file),
        )  # fmt: skip
        code, report, _ = run(
            "apply", str(plan_file), "-i", str(images), "--target", sharded_target,
            "--shard", f"{k}/3", "--format", "json",
        )  # fmt: skip
        (tmp_path / "reports" / f"report-{k}.json").write_text(report, encoding="utf-8")
    assert digests(dst, whole_target) == digests(dst, sharded_target)
    assert len(digests(dst, whole_target)) == 12  # 11 tags of images, and the signature
    # The reports of the shards are one report.
    code, merged_report, _ = run("report", str(tmp_path / "reports"), "--format", "json")
    assert code == 1
    summary = json.loads(merged_report)["summary"]
    assert summary == {"created": 9, "skipped": 1, "conflict": 1, "failed": 1}, summary
    code, markdown, _ = run("report", str(tmp_path / "reports"), "--format", "markdown")
    assert "**Apply: 9 created, 1 skipped, 1 conflict, 1 failed.**" in markdown
    # A shard's report among another plan's is refused.
    code, whole_report, _ = run(
        "apply", "-i", str(images), "--target", whole_target, "--format", "json"
    )
    (tmp_path / "reports" / "report-1.json").write_text(whole_report, encoding="utf-8")
    code, _, stderr = run("report", str(tmp_path / "reports"))
    assert code == 1 and "targets" in stderr and "is a whole plan" in stderr


def digests(host: str, prefix: str) -> dict[str, str]:
    """Every tag below ``prefix`` in the registry at ``host``, with its digest."""
    session = requests.Session()
    catalog = session.get(f"http://{host}/v2/_catalog", timeout=10).json()["repositories"]
    below = prefix.split("/", 1)[1] + "/"
    found = {}
    for repository in catalog:
        if not repository.startswith(below):
            continue
        tags = session.get(f"http://{host}/v2/{repository}/tags/list", timeout=10).json()["tags"]
        for tag in tags or ():
            head = session.head(
                f"http://{host}/v2/{repository}/manifests/{tag}",
                headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)},
                timeout=10,
            )
            found[f"{repository.removeprefix(below)}:{tag}"] = head.headers["Docker-Content-Digest"]
    return found
