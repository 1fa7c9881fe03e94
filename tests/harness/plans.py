"""Generated plans and apply reports of any size, for what renders them (no registry needed).

The shape is a platform team's file grown large: several source registries, many vendors,
images with several tags, digest-pinned entries, every action, signatures, warnings — and
reasons as long as registries make them (a proxy's HTML error page, a long chain of mirror
answers).
"""

from __future__ import annotations

import hashlib

from imagesync.apply.report import ApplyReport, ImageResult, Outcome, SubResult, Transfer
from imagesync.plan.document import (
    Action,
    Change,
    EntryFix,
    Fix,
    ImagesFileInfo,
    Plan,
    SubChange,
)

PREFIX = "europe-docker.pkg.dev/platform-team/prod/external"
REGISTRIES = ("docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "gcr.io", "localhost:5000")
# Per 100 entries: 80 skips, 12 creates, 5 conflicts, 3 errors (spread over the file).
_ACTIONS = (
    ([Action.SKIP] * 16 + [Action.CREATE] * 2 + [Action.CONFLICT]) * 5
    + [Action.CREATE] * 2
    + [Action.ERROR] * 3
)
assert len(_ACTIONS) == 100
LONG = 3_000  # characters of a long reason


def digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def _names(number: int, prefix: str = PREFIX) -> tuple[str, str, str]:
    """(source as written, normalised source, target) of entry ``number``."""
    registry = REGISTRIES[number % len(REGISTRIES)]
    vendor = f"vendor-{number % 97:02d}"
    name = f"{vendor}/component-with-a-long-name-{number // 3:05d}"
    tag = f"v1.{number % 3}.{number % 17}-debian-12-r{number % 50}"
    written = name if registry == "docker.io" else f"{registry}/{name}"
    if number % 7 == 0:
        written, tag = f"{written}@{digest('pin', number)}", f"{tag}-v1"
    mapped = written.split("@")[0].replace(":", "-")
    return (
        written if "@" in written else f"{written}:{tag}",
        f"{registry}/{name}:{tag}",
        f"{prefix}/{mapped}:{tag}",
    )


def generated_change(number: int, prefix: str = PREFIX) -> Change:
    action = _ACTIONS[number % len(_ACTIONS)]
    written, source, target = _names(number, prefix)
    line = 3 + 2 * number
    base = Change(
        entry=number + 1,
        line=line,
        source_text=written,
        source=source,
        target=target,
        action=action,
        reason="",
        digest=digest("source", number) if action is not Action.ERROR else None,
        media_type="application/vnd.oci.image.index.v1+json",
        platforms=("linux/amd64", "linux/arm64", "linux/s390x") if number % 2 else ("linux/amd64",),
    )
    if action is Action.SKIP:
        sig = _signature(source, target, base.digest or "", Action.SKIP)
        return _with(base, reason="already in the target", target_digest=base.digest, subs=(sig,))
    if action is Action.CREATE:
        sig = _signature(source, target, base.digest or "", Action.CREATE)
        return _with(
            base,
            reason="not in the target",
            blobs=7,
            size=123_456_789,
            mounted=3,
            subs=(sig,),
            warnings=("source has neither tag nor digest, so it means :latest" * 3,)
            if number % 5 == 0
            else (),
        )
    if action is Action.CONFLICT:
        held = digest("target", number)
        upstream = number % 4 != 0
        tag = target.rsplit(":", 1)[1]
        name = written.split("@")[0] if "@" in written else written.rsplit(":", 1)[0]
        entry = EntryFix(
            source=f"{name}@{held if upstream else base.digest}",
            tag=tag if upstream else f"{tag}-v2",
            amd64_only=False,
            first_line=line,
            last_line=line + 1,
            indent=2,
            key_indent=4,
        )
        reason = (
            f"target tag {target} holds {held}, the source {written} is now {base.digest}; "
            "tags are immutable, so it is not overwritten. " + "and it goes on. " * (LONG // 16)
        )
        return _with(
            base,
            reason=reason,
            target_digest=held,
            fix=Fix(target_digest_at_source=upstream, entry=entry),
        )
    reason = (
        f"cannot resolve host {source.split('/')[0]}, and mirror mirror.internal answered 502 "
        "<html><body><h1>502 Bad Gateway</h1>" + "<p>the proxy said a lot</p>" * (LONG // 26)
    )
    return _with(base, reason=reason)


def _with(
    change: Change,
    *,
    reason: str,
    target_digest: str | None = None,
    blobs: int = 0,
    size: int = 0,
    mounted: int = 0,
    subs: tuple[SubChange, ...] = (),
    warnings: tuple[str, ...] = (),
    fix: Fix | None = None,
) -> Change:
    return Change(
        entry=change.entry,
        line=change.line,
        source_text=change.source_text,
        source=change.source,
        target=change.target,
        action=change.action,
        reason=reason,
        digest=change.digest,
        media_type=change.media_type,
        platforms=change.platforms,
        target_digest=target_digest,
        warnings=warnings,
        blobs_to_transfer=blobs,
        bytes_to_transfer=size,
        subchanges=subs,
        blobs_to_mount=mounted,
        bytes_to_mount=mounted * 1000,
        fix=fix,
    )


def _signature(source: str, target: str, subject: str, action: Action) -> SubChange:
    """A cosign signature as plan names it: ``sha256-<hex>.sig`` of ``subject``, read by
    digest from the source repository."""
    tag = subject.replace(":", "-") + ".sig"
    signature = digest("sig", subject)
    return SubChange(
        kind="signature",
        source=f"{source.rsplit(':', 1)[0]}:{tag}@{signature}",
        target=f"{target.rsplit(':', 1)[0]}:{tag}",
        digest=signature,
        media_type="application/vnd.oci.image.manifest.v1+json",
        action=action,
        reason="not in the target" if action is Action.CREATE else "already in the target",
        subject=subject,
    )


def generated_plan(count: int = 10_000, prefix: str = PREFIX) -> Plan:
    """A plan of ``count`` images: 80 % skips, 12 % creates, 5 % conflicts, 3 % errors."""
    return Plan(
        tool_version="0.1.0",
        created="2026-12-01T00:00:00Z",
        target_prefix=prefix,
        images_file=ImagesFileInfo("external-images.yaml", "e" * 64),
        changes=tuple(generated_change(n, prefix) for n in range(count)),
        warnings=("registry-1.docker.io allows 100 more pulls now, apply needs about 3000",),
    )


def generated_report(plan: Plan) -> ApplyReport:
    """What applying ``plan`` could report: its creates created, its skips skipped."""
    outcome = {
        Action.CREATE: Outcome.CREATED,
        Action.SKIP: Outcome.SKIPPED,
        Action.CONFLICT: Outcome.CONFLICT,
        Action.ERROR: Outcome.FAILED,
    }
    results = tuple(
        ImageResult(
            entry=c.entry,
            source=c.source,
            target=c.target,
            digest=c.digest,
            outcome=outcome[c.action],
            message=c.reason if c.action in (Action.CONFLICT, Action.ERROR) else "",
            transfer=Transfer(4, 3, 0, 1234567) if c.action is Action.CREATE else Transfer(),
            subresults=tuple(
                SubResult(s.kind, s.target, s.digest, outcome[s.action], s.reason)
                for s in c.subchanges
            ),
            fix=c.fix,
        )
        for c in plan.changes
    )
    return ApplyReport(results, target_prefix=plan.target_prefix, images_file=plan.images_file)
