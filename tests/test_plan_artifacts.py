"""The review workflow's artifacts (issue 9): the saved plan apply executes, and the Markdown
reviewers read.

- A plan's checksum is a sha256 anyone can recompute, so an edited plan artifact can pass it.
  ``apply PLAN -i FILE`` must still refuse, before any request, a plan whose changes are not the
  ones plan makes for the entries of FILE: an added image, an edited target, a signature
  written elsewhere, a source pinned to one digest but planned with another.
- The Markdown of a plan puts conflicts and errors first, gives their reason and fix, folds a
  long list of unchanged images into ``<details>`` and counts right.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from imagesync.errors import PlanRejected
from imagesync.images.file import ImagesFile, load_images_file
from imagesync.plan.checks import check_plan
from imagesync.plan.document import Action, Change, ImagesFileInfo, Plan, SubChange
from imagesync.render import render_plan
from tests.harness.cli import run, write_images
from tests.harness.faultproxy import FaultProxy
from tests.harness.forgery import reseal
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def signature_for(change: dict[str, Any], target_repository: str) -> dict[str, Any]:
    tag = change["digest"].replace(":", "-") + ".sig"
    source_repository = change["source"].rsplit(":", 1)[0]
    return {
        "kind": "signature",
        "source": f"{source_repository}:{tag}@{OTHER}",
        "target": f"{target_repository}:{tag}",
        "digest": OTHER,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "action": "create",
        "reason": "not in the target",
        "target_digest": None,
        "artifact_type": None,
        "subject": change["digest"],
        "size": 400,
    }


# -- apply PLAN -i FILE against real registries ---------------------------------------------


def add_image(document: dict[str, Any], source_host: str) -> None:
    """An image the images file does not list, as a new entry."""
    added = copy.deepcopy(document["changes"][0])
    added.update(
        entry=2,
        line=3,
        source_text=f"{source_host}/team/extra:1.0",
        source=f"{source_host}/team/extra:1.0",
        target=added["target"].replace("/team/app:", "/team/extra:"),
    )
    document["changes"].append(added)


def add_image_under_entry_1(document: dict[str, Any], source_host: str) -> None:
    """The same, disguised as a second change of the listed entry."""
    added = copy.deepcopy(document["changes"][0])
    added.update(
        source_text=f"{source_host}/team/extra:1.0",
        source=f"{source_host}/team/extra:1.0",
        target=added["target"].replace("/team/app:", "/team/extra:"),
    )
    document["changes"].append(added)


def edit_target(document: dict[str, Any], source_host: str) -> None:
    """The listed image, written to another tag than the images file says."""
    change = document["changes"][0]
    change["target"] = change["target"].replace(":1.0", ":latest")


def edit_source(document: dict[str, Any], source_host: str) -> None:
    """Another image copied to the listed target."""
    change = document["changes"][0]
    change["source"] = change["source"].replace("/team/app:", "/team/extra:")


def signature_elsewhere(document: dict[str, Any], source_host: str) -> None:
    """A signature written into another repository of the target."""
    change = document["changes"][0]
    elsewhere = change["target"].rsplit("/", 1)[0] + "/other"
    change["subchanges"].append(signature_for(change, elsewhere))


EDITS = {
    "added image": (add_image, "entry 2"),
    "added image under entry 1": (add_image_under_entry_1, "entry 1"),
    "edited target": (edit_target, "target"),
    "edited source": (edit_source, "normalised source"),
    "signature elsewhere": (signature_elsewhere, "signature target"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_plan_artifact_is_refused_before_any_request(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path, edit: str
) -> None:
    push_image(source_registry.host, "team/app", "1.0", seed=1)
    push_image(source_registry.host, "team/extra", "1.0", seed=2)
    with FaultProxy(target_registry.host) as proxy, FaultProxy(source_registry.host) as sproxy:
        images = write_images(
            tmp_path, f"{proxy.host}/mirror", f'- source: "{sproxy.host}/team/app:1.0"\n'
        )
        plan_path = tmp_path / "plan.json"
        code, stdout, stderr = run("plan", "-i", str(images), "-o", str(plan_path))
        assert code == 0, stdout + stderr
        document = json.loads(plan_path.read_text())
        assert [c["action"] for c in document["changes"]] == ["create"]
        change, expected = EDITS[edit]
        change(document, sproxy.host)
        plan_path.write_text(json.dumps(reseal(document)))
        seen = len(proxy.requests) + len(sproxy.requests)

        code, stdout, stderr = run("apply", str(plan_path), "-i", str(images))

        assert code == 1, stdout + stderr
        assert "re-run plan" in stderr
        assert expected in stderr
        assert "Traceback" not in stdout + stderr
        assert len(proxy.requests) + len(sproxy.requests) == seen, "apply sent a request"
        assert proxy.writes() == []


def test_unedited_plan_artifact_applies(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    pushed = push_image(source_registry.host, "team/app", "1.0")
    images = write_images(
        tmp_path,
        f"{target_registry.host}/mirror",
        f'- source: "{source_registry.host}/team/app:1.0"\n',
    )
    plan_path = tmp_path / "plan.json"
    assert run("plan", "-i", str(images), "-o", str(plan_path))[0] == 0
    code, stdout, stderr = run("apply", str(plan_path), "-i", str(images), "--format", "json")
    assert code == 0, stdout + stderr
    (image,) = json.loads(stdout)["images"]
    assert (image["outcome"], image["digest"]) == ("created", pushed.digest)


def test_duplicated_entries_planned_once_still_apply(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    push_image(source_registry.host, "team/app", "1.0")
    src = source_registry.host
    images = write_images(
        tmp_path,
        f"{target_registry.host}/mirror",
        f'- source: "{src}/team/app:1.0"\n'
        f'- source: "{src}/team/other:2.0"\n'
        f'- source: "{src}/team/app:1.0"\n',
    )
    push_image(src, "team/other", "2.0", seed=3)
    plan_path = tmp_path / "plan.json"
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(plan_path))
    assert code == 0, stdout + stderr
    plan = Plan.read(plan_path)
    assert [c.entry for c in plan.changes] == [1, 2]  # entry 3 is entry 1's work
    code, stdout, stderr = run("apply", str(plan_path), "-i", str(images), "--format", "json")
    assert code == 0, stdout + stderr
    assert [i["outcome"] for i in json.loads(stdout)["images"]] == ["created", "created"]


# -- check_plan on its own: no registry -----------------------------------------------------


@pytest.fixture
def images(tmp_path: Path) -> ImagesFile:
    path = write_images(
        tmp_path,
        "reg.io/ext",
        '- source: "busybox:1.36"\n'
        f'- source: "ghcr.io/team/app@{DIGEST}"\n'
        '  tag: "v1"\n'
        '- source: "busybox:1.36"\n',
    )
    return load_images_file(path)


def plan_for(images: ImagesFile) -> Plan:
    """What plan makes of ``images``: one change per distinct entry."""
    changes = []
    for entry in images.entries[:2]:
        changes.append(
            Change(
                entry=entry.index,
                line=entry.line,
                source_text=entry.source_text,
                source=str(entry.source),
                target=str(entry.target),
                action=Action.CREATE,
                reason="not in the target",
                digest=DIGEST,
                media_type="application/vnd.oci.image.index.v1+json",
            )
        )
    return Plan(
        tool_version="1.0",
        created="2026-11-26T00:00:00Z",
        target_prefix=str(images.target_prefix),
        images_file=ImagesFileInfo(str(images.path), images.sha256),
        changes=tuple(changes),
    )


def refusal(plan: Plan, images: ImagesFile) -> str:
    with pytest.raises(PlanRejected) as caught:
        check_plan(plan, images)
    assert caught.value.hint and "re-run plan" in caught.value.hint
    return caught.value.message


def test_the_plan_of_the_file_passes_duplicates_included(images: ImagesFile) -> None:
    assert images.entries[0].sync_key == images.entries[2].sync_key
    check_plan(plan_for(images), images)
    # Fewer changes than entries is less work, not other work.
    check_plan(replace(plan_for(images), changes=plan_for(images).changes[:1]), images)


def test_a_change_for_an_entry_the_file_does_not_have(images: ImagesFile) -> None:
    plan = plan_for(images)
    extra = replace(plan.changes[0], entry=9, target="reg.io/ext/library/busybox:evil")
    message = refusal(replace(plan, changes=(*plan.changes, extra)), images)
    assert "entry 9" in message and "reg.io/ext/library/busybox:evil" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source_text", "busybox:1.37"),
        ("source", "docker.io/library/busybox:1.37"),
        ("target", "reg.io/ext/library/busybox:1.37"),
        ("line", 9),
    ],
)
def test_a_change_that_differs_from_its_entry(images: ImagesFile, field: str, value: Any) -> None:
    plan = plan_for(images)
    edited = replace(plan.changes[0], **{field: value})
    message = refusal(replace(plan, changes=(edited, *plan.changes[1:])), images)
    assert message.startswith("the plan's entry 1 (")
    assert str(value) in message


def test_a_duplicate_planned_twice(images: ImagesFile) -> None:
    plan = plan_for(images)
    third = images.entries[2]
    again = replace(
        plan.changes[0], entry=third.index, line=third.line, source_text=third.source_text
    )
    assert "more than once" in refusal(replace(plan, changes=(*plan.changes, again)), images)
    same = replace(plan, changes=(*plan.changes, plan.changes[0]))
    assert "more than once" in refusal(same, images)


def test_a_pinned_source_planned_with_another_digest(images: ImagesFile) -> None:
    plan = plan_for(images)
    swapped = replace(plan.changes[1], digest=OTHER)
    message = refusal(replace(plan, changes=(plan.changes[0], swapped)), images)
    assert "entry 2" in message and OTHER in message and DIGEST in message


@pytest.mark.parametrize("where", ["target", "source"])
def test_a_signature_outside_the_images_repositories(images: ImagesFile, where: str) -> None:
    plan = plan_for(images)
    change = plan.changes[0]
    entry = images.entries[0]
    tag = f"sha256-{'a' * 64}.sig"
    signature = SubChange(
        kind="signature",
        source=f"{entry.source.repository}:{tag}@{OTHER}",
        target=f"{entry.target.repository}:{tag}",
        digest=OTHER,
        media_type="application/vnd.oci.image.manifest.v1+json",
        action=Action.CREATE,
        reason="not in the target",
        subject=DIGEST,
    )
    signed = replace(change, subchanges=(signature,))
    check_plan(replace(plan, changes=(signed, plan.changes[1])), images)
    if where == "target":
        elsewhere = f"{entry.target.repository}-other:{tag}"
        wrong = replace(signature, target=elsewhere)
    else:
        elsewhere = f"docker.io/evil/busybox:{tag}@{OTHER}"
        wrong = replace(signature, source=elsewhere)
    moved = replace(signed, subchanges=(wrong,))
    message = refusal(replace(plan, changes=(moved, plan.changes[1])), images)
    assert f"signature {where} {elsewhere}" in message


def attached_plan(images: ImagesFile) -> Plan:
    """The plan of entry 1 with what plan writes for a signed image with one referrer."""
    plan = plan_for(images)
    entry = images.entries[0]
    source, target = entry.source.repository, entry.target.repository
    tag = f"sha256-{'a' * 64}"
    third = "sha256:" + "c" * 64
    manifest = "application/vnd.oci.image.manifest.v1+json"

    def attached(kind: str, source: str, target: str, digest: str) -> SubChange:
        return SubChange(
            kind=kind,
            source=source,
            target=target,
            digest=digest,
            media_type=manifest,
            action=Action.CREATE,
            reason="not in the target",
            subject=DIGEST,
        )

    subchanges = (
        attached("signature", f"{source}:{tag}.sig@{OTHER}", f"{target}:{tag}.sig", OTHER),
        attached("referrer", f"{source}@{third}", f"{target}@{third}", third),
        attached("referrers-index", f"{target}:{tag}", f"{target}:{tag}", DIGEST),
    )
    signed = replace(plan.changes[0], subchanges=subchanges)
    return replace(plan, changes=(signed, plan.changes[1]))


def _retarget(index: int, **fields: Any) -> Any:
    def edit(plan: Plan) -> Plan:
        change = plan.changes[0]
        subs = list(change.subchanges)
        subs[index] = replace(subs[index], **fields)
        return replace(plan, changes=(replace(change, subchanges=tuple(subs)), plan.changes[1]))

    return edit


TAG = f"sha256-{'a' * 64}"
FORGED_SUBCHANGES = {
    "a signature written to another tag": (
        _retarget(0, target="reg.io/ext/library/busybox:evil"),
        "signature target reg.io/ext/library/busybox:evil",
    ),
    "a signature named for another subject": (
        _retarget(0, subject=OTHER),
        "a signature of " + OTHER,
    ),
    "an attestation under a signature's name": (
        _retarget(0, kind="attestation"),
        "attestation target",
    ),
    "a referrer written to a tag": (
        _retarget(1, target="reg.io/ext/library/busybox:1.36"),
        "referrer target reg.io/ext/library/busybox:1.36",
    ),
    "a referrers index aimed at the image's tag": (
        _retarget(2, target="reg.io/ext/library/busybox:1.36"),
        "referrers-index target reg.io/ext/library/busybox:1.36",
    ),
    "a referrers index that lists another digest": (
        _retarget(2, digest=OTHER),
        "that lists " + OTHER,
    ),
    "a sub-change without a subject": (_retarget(1, subject=None), "without a subject"),
    "a signature read from another repository": (
        _retarget(0, source=f"docker.io/library/other:{TAG}.sig@{OTHER}"),
        "signature source docker.io/library/other",
    ),
}


def test_what_plan_writes_for_attached_artifacts_passes(images: ImagesFile) -> None:
    check_plan(attached_plan(images))
    check_plan(attached_plan(images), images)


@pytest.mark.parametrize("with_images_file", [True, False], ids=["with -i", "without -i"])
@pytest.mark.parametrize("case", list(FORGED_SUBCHANGES))
def test_a_sub_change_writes_only_the_name_its_kind_and_subject_imply(
    images: ImagesFile, case: str, with_images_file: bool
) -> None:
    edit, expected = FORGED_SUBCHANGES[case]
    with pytest.raises(PlanRejected) as caught:
        check_plan(edit(attached_plan(images)), images if with_images_file else None)
    assert expected in caught.value.message
    assert caught.value.hint and "re-run plan" in caught.value.hint


# -- the Markdown reviewers read ------------------------------------------------------------


def review_plan() -> Plan:
    def change(index: int, name: str, action: Action, reason: str, **more: Any) -> Change:
        return Change(
            entry=index,
            line=index + 2,
            source_text=f"{name}:1.0",
            source=f"docker.io/library/{name}:1.0",
            target=f"reg.io/ext/library/{name}:1.0",
            action=action,
            reason=reason,
            **more,
        )

    changes = [change(1, "conflicted", Action.CONFLICT, "CONFLICT-REASON; pin the digest")]
    changes += [
        change(i, f"new{i}", Action.CREATE, "not in the target", digest=DIGEST) for i in (2, 3)
    ]
    changes += [
        change(i, f"same{i}", Action.SKIP, "already in the target", digest=DIGEST)
        for i in range(4, 54)
    ]
    changes.append(change(54, "new54", Action.CREATE, "not in the target", digest=DIGEST))
    changes.append(change(55, "broken", Action.ERROR, "source not found (check the name)"))
    return Plan(
        tool_version="1.0",
        created="2026-11-26T00:00:00Z",
        target_prefix="reg.io/ext",
        images_file=ImagesFileInfo("external-images.yaml", "c" * 64),
        changes=tuple(changes),
    )


def test_markdown_puts_problems_first_and_folds_the_skips() -> None:
    plan = review_plan()
    assert plan.summary() == {"create": 3, "skip": 50, "conflict": 1, "error": 1}
    markdown = render_plan(plan, "markdown")

    assert "**Plan: 3 to create, 50 to skip, 1 conflict, 1 error.**" in markdown.splitlines(), (
        markdown
    )
    position = {name: markdown.index(name) for name in ("conflicted", "broken", "new2", "same4")}
    assert position["conflicted"] < position["broken"] < position["new2"] < position["same4"]
    # Each problem is a block of its own, outside any table, with its reason.
    lines = markdown.splitlines()
    conflict = lines.index(next(line for line in lines if "library/conflicted" in line))
    assert not lines[conflict].startswith("|")
    assert "pin the digest" in lines[conflict + 1]
    error = next(i for i, line in enumerate(lines) if "library/broken" in line)
    assert "source not found (check the name)" in lines[error + 1]
    # The 50 skips, and only they, are inside one <details> block, counted by registry.
    (folded,) = re.findall(r"<details>(.*?)</details>", markdown, flags=re.S)
    assert "= 50 images to skip" in folded
    assert "| `docker.io` | 50 |" in folded
    assert sorted(re.findall(r"library/(\w+):", folded)) == sorted(f"same{i}" for i in range(4, 54))
    outside = set(re.findall(r"library/(\w+):", markdown.replace(folded, "")))
    assert outside == {"new2", "new3", "new54", "conflicted", "broken"}
    headings = markdown.replace(folded, "")
    # Group headings count the group; targets are shown below the prefix the heading names.
    assert "### imagesync plan for `reg.io/ext`" in headings
    assert "#### + 3 images to create" in headings
    assert "#### ! 1 conflict" in headings and "#### x 1 error" in headings
    assert "reg.io/ext/library" not in markdown


def test_markdown_escapes_what_would_break_the_page_in_reasons() -> None:
    plan = review_plan()
    reason = "a | b\n# c </details> [x](http://x) @org/team"
    broken = replace(plan.changes[-1], reason=reason)
    markdown = render_plan(replace(plan, changes=(*plan.changes[:-1], broken)), "markdown")
    lines = markdown.splitlines()
    error = next(i for i, line in enumerate(lines) if "library/broken" in line)
    # A word joiner (U+2060) after "#", "@" and in "://": no reference, mention or link. The
    # newline is shown as the two characters "\n" (printable), its backslash escaped.
    assert lines[error + 1] == (
        "a \\| b\\\\n\\#\u2060 c \\</details\\> \\[x\\](http:\u2060//x) @\u2060org/team"
    )
    assert markdown.count("</details>") == 1
