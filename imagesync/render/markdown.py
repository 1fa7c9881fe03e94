"""Plans and apply reports in Markdown, for reviewers on GitHub (step summaries, comments):
bounded in size, readable in a column about 1,000 pixels wide.

GitHub refuses a step summary over 1 MiB and a comment over 65,536 characters, and a plan of
thousands of images would be many times that, so a page has a bound (``max_bytes``, UTF-8
bytes, by default the step summary's limit) that it spends in the order a reviewer needs: the
counts; every conflict and error named, a line each, before anything else is given room; then
as much of them as fits (what, why, and the fix to paste, in a block of its own for the first
ones); what will be written (a table of creates); then what stays as it is (skips, counted by
source registry in a collapsed block). Each part also has a share that keeps a page readable
(400 KiB in all). Whatever does not fit is counted at the end and pointed to the plan file
(and, for a page bounded tighter than a step summary, to the step summary).

Readable at a glance: the heading names the target prefix and targets are shown below it,
digests are cut to 12 hex digits, and a table row holds at most about ROW_WIDTH characters of
text, in short cells that wrap. Text from registries, plans and images files is redacted, then
shortened, then escaped (:mod:`.escape`): it cannot break a table, close a block, load
anything or mention anyone.

Blocks are built a line per field and table rows a cell per column, so that a new field is one
line of code.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from imagesync.apply.report import ApplyReport, ImageResult, Outcome, SubResult
from imagesync.content.referrers import SIGNING
from imagesync.defaults import MARKDOWN_MAX_BYTES
from imagesync.plan.document import Action, Change, Fix, Plan, SubChange
from imagesync.redact import excerpt
from imagesync.render.common import (
    OUTCOME_SYMBOL,
    SYMBOL,
    artifact_text,
    lines_of,
    no_changes,
    report_summary,
    report_transfer,
    summary_line,
    transfer_line,
)
from imagesync.render.escape import code, fenced, row, table, text
from imagesync.words import human_bytes, plural

# What each part may use at most, in the order they are written, so that a page stays
# readable (400 KiB in all); what one leaves unused goes to the next. The page's bound
# (max_bytes) comes first: no part takes more than the bound leaves, except that naming every
# conflict and error goes before any share.
_PARTS = {
    "head": 16 * 1024,
    "problems": 216 * 1024,
    "repositories": 8 * 1024,
    "sub-problems": 40 * 1024,
    "creates": 68 * 1024,
    "sub-creates": 16 * 1024,
    "skips": 12 * 1024,
    "warnings": 20 * 1024,
}
# Kept for the footer, which counts what the parts had no room for.
_FOOTER = 1024
# The smallest bound a page can be written in: a heading, the counts and the footer.
MIN_BYTES = 4 * 1024
# Conflicts and errors written as blocks of their own; the rest get a line each.
FULL_BLOCKS = 50
# Text of a table row (cells without the Markdown around them), and of each kind of cell.
ROW_WIDTH = 160
_TARGET_CELL = 50
_SOURCE_CELL = 36
_ARTIFACT_CELL = 46
_NAME = 90
REASON_IN_BLOCK = 500
REASON_IN_LINE = 100
PLAN_WARNINGS = 20
_DIGEST = re.compile(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}")


# -- the budget --------------------------------------------------------------------------------


class _Budget:
    """Bytes for the parts of a page, in their order: a part gets its own share and what the
    parts before it left unused (or, absent, did not take), never more than the bound
    (``max_bytes``, less the footer's room) leaves after them."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(max_bytes, MIN_BYTES)
        self._room = self.max_bytes - _FOOTER
        self._order = list(_PARTS)
        self._next = 0
        self._spare = 0
        self._used = 0

    def part(self, name: str, at_least: int = 0) -> _Part:
        """The next part, ``name``; ``at_least``: bytes it needs beyond its share (naming
        every conflict and error), as far as the bound allows."""
        end = self._order.index(name, self._next) + 1
        share = self._spare + sum(_PARTS[n] for n in self._order[self._next : end])
        self._next, self._spare = end, 0
        return _Part(min(max(share, at_least), self._room - self._used), self)

    def close(self, part: _Part) -> None:
        self._used += part.size
        self._spare += part.limit - part.size


@dataclass
class _Part:
    """Lines of one part, within ``limit`` bytes; :meth:`add` refuses what would not fit
    (with ``reserve`` bytes kept for what must still follow, such as a closing tag)."""

    limit: int
    budget: _Budget
    lines: list[str] = field(default_factory=list)
    size: int = 0

    def add(self, lines: Sequence[str], reserve: int = 0) -> bool:
        size = _size(lines)
        if self.size + size + reserve > self.limit:
            return False
        self.lines.extend(lines)
        self.size += size
        return True

    def add_each(self, items: Iterable[Sequence[str]]) -> int:
        """Add ``items`` (each some lines) in order while they fit, each keeping room for what
        closes the part; how many were added. ``items`` is read lazily: those past the first
        that does not fit are not even built."""
        added = 0
        for item in items:
            if not self.add(item, reserve=2):
                break
            added += 1
        return added

    def close(self) -> list[str]:
        self.budget.close(self)
        return self.lines


def _size(lines: Sequence[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


@dataclass
class _Left:
    """What a page had no room for, by what it is: the footer counts it."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, what: str, number: int) -> None:
        if number:
            self.counts[what] += number

    def footer(self, budget: _Budget, where: str) -> list[str]:
        """What is not shown, counted, and where it all is: ``where``, and the step summary
        when this page was bounded tighter than a step summary is (a comment)."""
        if not self.counts:
            return []
        listed = ", ".join(f"{number:,} {what}" for what, number in self.counts.items())
        if budget.max_bytes < MARKDOWN_MAX_BYTES:
            where = f"The run's step summary shows more. {where}"
        return [
            "---",
            "",
            f"**Not shown here, to keep this page within {human_bytes(budget.max_bytes)}: "
            f"{listed}.** {where}",
            "",
        ]


# -- what a plan, a report or a registry wrote -------------------------------------------------


def _text(words: str, limit: int, *, line: bool = False) -> str:
    """Someone else's words as Markdown text: redacted, then shortened, then escaped
    (:func:`.escape.text`), on one line (``line``: a line of its own). Digests keep 12 hex
    digits (the full ones are in the plan)."""
    return text(_DIGEST.sub(r"\1…", excerpt(words, limit)), line=line)


def _short(digest: str | None) -> str:
    return code(digest[:19] + "…") if digest else "-"


def _relative(prefix: str, name: str) -> str:
    """A target below the prefix the heading names; anything else (a hostile plan's) whole."""
    return name[len(prefix) + 1 :] if name.startswith(prefix + "/") else name


def _source_shown(source_text: str) -> str:
    return _DIGEST.sub(r"\1…", source_text)


def _written_differently(change: Change, target: str) -> bool:
    """Whether the source as written says more than the target below the prefix does (a
    digest, another tag, a port, a Docker Hub short name); most sources are their target."""
    return change.source_text != target


def _registry(source: str) -> str:
    """The registry of a normalised source reference (``docker.io/library/x:1``)."""
    return source.split("/", 1)[0] if "/" in source else source


def _command(verb: str, path: str) -> str:
    """``imagesync VERB PATH`` as code a reader can paste, whatever the path holds."""
    return code(f"imagesync {verb} {shlex.quote(path)}", 240)


# -- conflicts and errors: every one named first -----------------------------------------------


@dataclass(frozen=True)
class _Named:
    """A conflict or an error in the forms the budget chooses among: a block of its own
    (what, why, the fix), a line (what and why), or its name alone."""

    block: Callable[[], list[str]]
    line: Callable[[], str]
    name: str


@dataclass(frozen=True)
class _Group:
    """Conflicts, errors or failures under their heading; ``one`` and ``many`` name them."""

    heading: str
    one: str
    many: str
    items: Sequence[_Named]


# Room kept per group for its heading's blank line, its closing blank line, and the line that
# counts what was not named.
_GROUP_ROOM = 160


def _naming_room(groups: Sequence[_Group]) -> int:
    """Bytes that name every item of ``groups``, a line each: what the part needs at least."""
    return sum(_size([g.heading]) + _GROUP_ROOM + _size([i.name for i in g.items]) for g in groups)


def _add_named(part: _Part, groups: Sequence[_Group], left: _Left) -> None:
    """Every item of ``groups`` named before any detail: a line each with what and why when
    all such lines fit, else its name alone; then, while they fit, blocks for the first
    FULL_BLOCKS. Past the bound, the names that fit, and how many more there are."""
    groups = [g for g in groups if g.items]
    room = part.limit - part.size - sum(_size([g.heading]) + _GROUP_ROOM for g in groups)
    forms = _forms([item for g in groups for item in g.items], room)
    for group in groups:
        shown, forms = forms[: len(group.items)], forms[len(group.items) :]
        named = [lines for lines in shown if lines]
        part.add([group.heading, ""])
        for lines in named:
            part.add(lines)
        unnamed = len(group.items) - len(named)
        if unnamed:
            more = plural(unnamed, f"more {group.one}", f"more {group.many}")
            part.add([f"- … and {more}, not named for want of room"])
        part.add([""])
        left.add(f"{group.many} not named", unnamed)


def _forms(items: Sequence[_Named], room: int) -> list[list[str]]:
    """The lines of each item within ``room`` bytes (an empty list: not named)."""
    lines: list[list[str]] = []
    used = 0
    for item in items:
        line = [item.line()]
        used += _size(line)
        if used > room:
            return _names_only(items, room)
        lines.append(line)
    for number, item in enumerate(items[:FULL_BLOCKS]):
        block = [*item.block(), ""]
        grown = used + _size(block) - _size(lines[number])
        if grown > room:
            break
        lines[number], used = block, grown
    return lines


def _names_only(items: Sequence[_Named], room: int) -> list[list[str]]:
    """Names, a line each, as many as fit: the first ones (the rest are counted)."""
    forms: list[list[str]] = []
    used = 0
    for item in items:
        used += _size([item.name])
        if used > room:
            break
        forms.append([item.name])
    return forms + [[] for _ in items[len(forms) :]]


# -- plans -------------------------------------------------------------------------------------


def plan_markdown(
    plan: Plan,
    *,
    changed_only: bool = False,
    plan_file: str | None = None,
    merged_from: int = 0,
    max_bytes: int = MARKDOWN_MAX_BYTES,
) -> str:
    """The plan for a pull request, within ``max_bytes`` (UTF-8): the counts; every conflict
    and error named; their details; creates; skips, counted. ``plan_file``: where the whole
    plan is, for the note on what did not fit; ``merged_from``: the plan was put together
    from that many shards' plans."""
    budget, left = _Budget(max_bytes), _Left()
    prefix = plan.target_prefix
    changes = [c for c in plan.changes if not changed_only or not _unchanged(c)]
    lines = _plan_head(budget, plan, merged_from, left)
    if not changes:
        lines += [no_changes(plan), ""]
    lines += _problems(budget, plan, changes, left)
    lines += _repositories(budget, plan, left)
    lines += _sub_problems(budget, prefix, changes, left)
    lines += _creates(budget, prefix, [c for c in changes if c.action is Action.CREATE], left)
    lines += _sub_creates(budget, prefix, changes, left)
    skipped = [c for c in changes if c.action is Action.SKIP]
    lines += _grouped(
        budget.part("skips"),
        "images to skip",
        f"{SYMBOL[Action.SKIP]} {plural(len(skipped), 'image')} to skip (already in the target)",
        [(_registry(c.source), _relative(prefix, c.target)) for c in skipped],
        left,
    )
    lines += _warnings(budget, prefix, changes, left)
    where = (
        f"The plan file (in CI, the plan artifact) has every image: {_command('show', plan_file)}."
        if plan_file
        else "The plan file (`imagesync plan -o FILE`; in CI, the plan artifact) has every image."
    )
    lines += left.footer(budget, where)
    return "\n".join(lines) + "\n"


def _unchanged(change: Change) -> bool:
    return change.action is Action.SKIP and all(s.action is Action.SKIP for s in change.subchanges)


def _plan_head(budget: _Budget, plan: Plan, merged_from: int, left: _Left) -> list[str]:
    part = budget.part("head")
    shard = f" — shard {plan.shard}" if plan.shard else ""
    if merged_from:
        shard = f" — {merged_from} shards"
    sources = f", sources from {code(plan.source_layout, 200)}" if plan.source_layout else ""
    part.add([f"### imagesync plan for {code(plan.target_prefix, 200)}{sources}{shard}", ""])
    part.add([f"**{summary_line(plan)}**", ""])
    transfer = transfer_line(plan)
    if transfer:
        part.add([transfer, ""])
    part.add(
        [
            f"Images file {code(plan.images_file.path, 120)} (sha256 "
            f"`{plan.images_file.sha256[:12]}`), planned {_text(plan.created, 40)} by imagesync "
            f"{_text(plan.tool_version, 40)}. Targets are shown below "
            f"{code(plan.target_prefix + '/', 200)}.",
            "",
        ]
    )
    warnings = plan.warnings[:PLAN_WARNINGS]
    if warnings:
        part.add(["> [!WARNING]", *(f"> {_text(w, 400)}  " for w in warnings), ""])
    left.add("plan warnings", len(plan.warnings) - len(warnings))
    return part.close()


def _problems(budget: _Budget, plan: Plan, changes: Sequence[Change], left: _Left) -> list[str]:
    """Conflicts, then errors: every one named, then as much of each as fits (blocks for the
    first FULL_BLOCKS, a line each for the rest)."""
    groups = [
        _Group(
            f"#### {SYMBOL[action]} {plural(len(group), what)}",
            what,
            what + "s",
            [_problem(plan, change) for change in group],
        )
        for action, what in ((Action.CONFLICT, "conflict"), (Action.ERROR, "error"))
        for group in [[c for c in changes if c.action is action]]
    ]
    part = budget.part("problems", at_least=_naming_room(groups))
    _add_named(part, groups, left)
    return part.close()


def _problem(plan: Plan, change: Change) -> _Named:
    target = _relative(plan.target_prefix, change.target)
    return _Named(
        block=lambda: _problem_block(plan, change),
        line=lambda: _problem_line(plan, change),
        name=f"- {SYMBOL[change.action]} {code(target, _NAME)}",
    )


def _problem_block(plan: Plan, change: Change) -> list[str]:
    """What, why, and the fix: a few short lines and, for a conflict, the YAML to paste."""
    target = _relative(plan.target_prefix, change.target)
    head = f"**{SYMBOL[change.action]} {code(target, 120)}** · entry {change.entry}, line "
    head += f"{change.line}"
    if _written_differently(change, target):
        head += f" · source {code(_source_shown(change.source_text), 120)}"
    lines = [head + "  "]
    if change.action is Action.CONFLICT and change.target_digest and change.digest:
        lines.append(
            f"The target tag holds {_short(change.target_digest)}, the source now "
            f"{_short(change.digest)}; tags are immutable, so it is not overwritten.  "
        )
        lines += _fix_lines(plan, change.fix, change.reason)
    else:
        lines.append(_text(change.reason, REASON_IN_BLOCK, line=True))
    return lines


def _advice(reason: str) -> str:
    """What a conflict's reason says to do, after what happened (which the block shows
    from the digests)."""
    return reason.partition("overwritten. ")[2]


def _fix_lines(plan: Plan, fix: Fix | None, reason: str) -> list[str]:
    if fix is None or fix.entry is None:
        return [_text(_advice(reason), REASON_IN_BLOCK, line=True)] if _advice(reason) else []
    entry = fix.entry
    if fix.target_digest_at_source:
        say = "The source still serves the target's digest: to keep it (a skip),"
    else:
        say = (
            "The target's digest is gone from the source: to mirror the source's new content "
            f"under a new tag ({code(entry.tag)}),"
        )
    return [
        f"{say} put this in place of {lines_of(entry)} of {code(plan.images_file.path, 80)}:",
        "",
        *fenced(entry.yaml.rstrip("\n").split("\n"), "yaml"),
    ]


def _problem_line(plan: Plan, change: Change) -> str:
    """A conflict or error in one line, once the blocks have used their share."""
    target = _relative(plan.target_prefix, change.target)
    text = f"- {SYMBOL[change.action]} {code(target, 90)} · line {change.line} · "
    fix = change.fix
    if fix is not None and fix.entry is not None:
        if fix.target_digest_at_source:
            return text + "the source still serves the target's digest: pin it (see the plan)"
        return text + f"the target's digest is gone upstream: a new tag, {code(fix.entry.tag)}"
    return text + _text(change.reason, REASON_IN_LINE)


def _sub_problems(
    budget: _Budget, prefix: str, changes: Sequence[Change], left: _Left
) -> list[str]:
    problems = [
        (c, s) for c in changes for s in c.subchanges if s.action in (Action.CONFLICT, Action.ERROR)
    ]
    blocks = (_sub_block(prefix, change, sub) for change, sub in problems)
    return _not_copied(budget, len(problems), blocks, left)


def _not_copied(budget: _Budget, count: int, blocks: Iterable[list[str]], left: _Left) -> list[str]:
    """The signatures and referrers that were not (or will not be) copied, a block each, as
    many as fit; plan and report alike."""
    if not count:
        return []
    part = budget.part("sub-problems")
    title = plural(count, "signature or referrer", "signatures and referrers")
    part.add([f"#### {SYMBOL[Action.CONFLICT]} {title} not copied", ""])
    shown = part.add_each([*block, ""] for block in blocks)
    left.add("signature and referrer problems", count - shown)
    return part.close()


def _sub_block(prefix: str, change: Change, sub: SubChange) -> list[str]:
    lines = [
        f"**{SYMBOL[sub.action]} {sub.kind} {code(_relative(prefix, sub.target), 120)}** of "
        f"{code(_relative(prefix, change.target), 80)}  "
    ]
    if sub.action is Action.CONFLICT and sub.target_digest and _advice(sub.reason):
        lines.append(
            f"The target holds {_short(sub.target_digest)}, the source {_short(sub.digest)}; "
            "it is not overwritten.  "
        )
        lines.append(_text(_advice(sub.reason), REASON_IN_BLOCK, line=True))
    else:
        lines.append(_text(sub.reason, REASON_IN_BLOCK, line=True))
    return lines


def _repositories(budget: _Budget, plan: Plan, left: _Left) -> list[str]:
    """The target repositories apply creates first (ECR), each named, reviewed like an image."""
    repositories = plan.repositories
    if not repositories:
        return []
    part = budget.part("repositories")
    count = plural(len(repositories), "repository", "repositories")
    part.add([f"#### {SYMBOL[Action.CREATE]} {count} to create", ""])
    part.add([_text(repositories[0].reason, REASON_IN_BLOCK, line=True), ""])
    shown = part.add_each(
        [f"- {SYMBOL[Action.CREATE]} repository to create: {code(r.repository, _NAME)}"]
        for r in repositories
    )
    part.add([""])
    left.add("repositories to create", len(repositories) - shown)
    return part.close()


def _creates(budget: _Budget, prefix: str, changes: Sequence[Change], left: _Left) -> list[str]:
    if not changes:
        return []
    part = budget.part("creates")
    header = ["line", "target", "source", "platforms", "transfer", "signatures"]
    part.add([f"#### {SYMBOL[Action.CREATE]} {plural(len(changes), 'image')} to create", ""])
    part.add(table(header, "--:|---|---|---|---|---|"))
    shown = part.add_each([row(_create_cells(prefix, change))] for change in changes)
    part.add([""])
    left.add("images to create", len(changes) - shown)
    return part.close()


def _create_cells(prefix: str, change: Change) -> list[str]:
    target = _relative(prefix, change.target)
    written = _written_differently(change, target)
    return [
        str(change.line),
        code(target, _TARGET_CELL),
        code(_source_shown(change.source_text), _SOURCE_CELL) if written else "",
        _contents(change),
        _transfer(change),
        _signatures(change.subchanges),
    ]


def _contents(change: Change) -> str:
    """The platforms of an image, or what an artifact is, in the platforms column (the text
    and JSON plans list them all)."""
    platforms, artifacts = change.platforms, change.artifact_types
    parts = []
    if len(platforms) == 1:
        parts.append(_text(platforms[0], 24))
    elif platforms:
        parts.append(f"{len(platforms)} platforms")
    if len(artifacts) == 1:
        parts.append(code(artifact_text(change), _ARTIFACT_CELL))
    elif artifacts:
        parts.append(f"{len(artifacts)} artifacts")
    return "; ".join(parts) or "-"


def _transfer(change: Change) -> str:
    text = f"{plural(change.blobs_to_transfer, 'blob')}, {human_bytes(change.bytes_to_transfer)}"
    if change.blobs_to_mount:
        text += f"; {change.blobs_to_mount:,} mounted"
    return text


def _signatures(subchanges: Sequence[SubChange]) -> str:
    """Copied signatures and referrers by action, then the signatures imagesync adds with
    its own key apart: a reviewer tells what comes from upstream from what the mirror signs."""
    counts = Counter(s.action for s in subchanges if s.kind != SIGNING)
    copied = " ".join(f"{SYMBOL[a]}{counts[a]}" for a in Action if counts[a])
    signs = sum(1 for s in subchanges if s.kind == SIGNING and s.action is Action.CREATE)
    return _with_signed(copied, signs, "signs")


def _sub_creates(budget: _Budget, prefix: str, changes: Sequence[Change], left: _Left) -> list[str]:
    """Signatures and referrers that images to skip gain (a new signature upstream)."""
    gaining = [
        c
        for c in changes
        if c.action is Action.SKIP and any(s.action is Action.CREATE for s in c.subchanges)
    ]
    if not gaining:
        return []
    part = budget.part("sub-creates")
    title = f"signatures and referrers for {plural(len(gaining), 'image')} to skip"
    part.add([f"#### {SYMBOL[Action.CREATE]} {title}", "", *table(["image", "to add"])])
    shown = part.add_each([row(_gaining_cells(prefix, change))] for change in gaining)
    part.add([""])
    left.add("images to skip with signatures to add", len(gaining) - shown)
    return part.close()


def _gaining_cells(prefix: str, change: Change) -> list[str]:
    kinds = Counter(s.kind for s in change.subchanges if s.action is Action.CREATE)
    return [
        code(_relative(prefix, change.target), _TARGET_CELL),
        ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())),
    ]


def _grouped(
    part: _Part, what: str, title: str, items: Sequence[tuple[str, str]], left: _Left
) -> list[str]:
    """``items`` (registry, name) in a collapsed block: counted by registry, then named, as
    many as fit."""
    if not items:
        return part.close()
    by_registry: dict[str, list[str]] = {}
    for registry, name in items:
        by_registry.setdefault(registry, []).append(name)
    rows = sorted(by_registry.items(), key=lambda item: (-len(item[1]), item[0]))
    closing = ["</details>", ""]
    part.add(["<details>", f"<summary><b>{title}</b>, by source registry</summary>", ""])
    part.add(table(["source registry", what], "---|---:|"))
    for number, (registry, names) in enumerate(rows):
        if not part.add([row([code(registry, 60), f"{len(names):,}"])], reserve=512):
            left.add(f"source registries of {what}", len(rows) - number)
            break
    part.add([""])
    for registry, names in rows:
        room = part.limit - part.size - _size(closing) - 64
        line = _names(f"{code(registry, 60)}: ", names, room)
        if line is None or not part.add([line, ""], reserve=_size(closing)):
            break
    part.add(closing)
    return part.close()


def _names(head: str, names: Sequence[str], room: int) -> str | None:
    """``head`` and as many of ``names`` as fit in ``room`` bytes, then how many more."""
    shown: list[str] = []
    size = len(head.encode("utf-8")) + 24
    for name in names:
        name_code = code(name, 80)
        size += len(name_code.encode("utf-8")) + 2
        if size > room:
            break
        shown.append(name_code)
    if not shown:
        return None
    more = len(names) - len(shown)
    return head + ", ".join(shown) + (f" and {more:,} more" if more else "")


def _warnings(budget: _Budget, prefix: str, changes: Sequence[Change], left: _Left) -> list[str]:
    warned = [(c, w) for c in changes for w in c.warnings]
    if not warned:
        return []
    part = budget.part("warnings")
    part.add([f"#### :warning: {plural(len(warned), 'warning')}", ""])
    shown = part.add_each(
        [f"- {code(_relative(prefix, change.target), 80)}: {_text(warning, 300)}"]
        for change, warning in warned
    )
    part.add([""])
    left.add("warnings", len(warned) - shown)
    return part.close()


# -- apply reports -----------------------------------------------------------------------------


def report_markdown(
    report: ApplyReport, *, report_file: str | None = None, max_bytes: int = MARKDOWN_MAX_BYTES
) -> str:
    """What apply did, within ``max_bytes``: every conflict and failure named, then their
    details, then what was created, then the rest, counted."""
    budget, left = _Budget(max_bytes), _Left()
    prefix = report.target_prefix
    head = budget.part("head")
    shard = f" — shard {report.shard}" if report.shard else ""
    head.add([f"### imagesync apply to {code(prefix, 200) if prefix else 'the target'}{shard}", ""])
    head.add([f"**{report_summary(report)}**", "", report_transfer(report), ""])
    if prefix:
        head.add([f"Targets are shown below {code(prefix + '/', 200)}.", ""])
    lines = head.close()
    failed = [r for r in report.results if r.outcome in (Outcome.CONFLICT, Outcome.FAILED)]
    lines += _failures(budget, prefix, failed, left)
    lines += _sub_failures(budget, prefix, report.results, left)
    created = [r for r in report.results if r.outcome is Outcome.CREATED]
    lines += _created(budget, prefix, created, left)
    skipped = [r for r in report.results if r.outcome is Outcome.SKIPPED]
    lines += _grouped(
        budget.part("skips"),
        "images skipped",
        f"{OUTCOME_SYMBOL[Outcome.SKIPPED]} {plural(len(skipped), 'image')} skipped (in place)",
        [(_registry(r.source), _relative(prefix, r.target)) for r in skipped],
        left,
    )
    where = (
        f"The report file has every image: {_command('report', report_file)}."
        if report_file
        else "The JSON report (`imagesync apply --format json`) has every image."
    )
    lines += left.footer(budget, where)
    return "\n".join(lines) + "\n"


def _failures(
    budget: _Budget, prefix: str, results: Sequence[ImageResult], left: _Left
) -> list[str]:
    heading = f"#### {SYMBOL[Action.CONFLICT]} {plural(len(results), 'image')} not applied"
    named = [_failure(prefix, result) for result in results]
    groups = [_Group(heading, "image not applied", "images not applied", named)]
    part = budget.part("problems", at_least=_naming_room(groups))
    _add_named(part, groups, left)
    return part.close()


def _failure(prefix: str, result: ImageResult) -> _Named:
    target = _relative(prefix, result.target)
    return _Named(
        block=lambda: _failure_block(prefix, result),
        line=lambda: _failure_line(prefix, result),
        name=f"- {OUTCOME_SYMBOL[result.outcome]} {code(target, _NAME)}",
    )


def _failure_block(prefix: str, result: ImageResult) -> list[str]:
    lines = [
        f"**{OUTCOME_SYMBOL[result.outcome]} {result.outcome.value} "
        f"{code(_relative(prefix, result.target), 120)}** · entry {result.entry}  ",
        _text(result.message, REASON_IN_BLOCK, line=True),
    ]
    fix = result.fix
    if fix is not None and fix.entry is not None:
        lines += ["", "The fix for the images file:", ""]
        lines += fenced(fix.entry.yaml.rstrip("\n").split("\n"), "yaml")
    return lines


def _failure_line(prefix: str, result: ImageResult) -> str:
    return (
        f"- {OUTCOME_SYMBOL[result.outcome]} {code(_relative(prefix, result.target), 120)}: "
        f"{_text(result.message, REASON_IN_LINE)}"
    )


def _sub_failures(
    budget: _Budget, prefix: str, results: Sequence[ImageResult], left: _Left
) -> list[str]:
    failed = [
        (r, s)
        for r in results
        for s in r.subresults
        if s.outcome in (Outcome.CONFLICT, Outcome.FAILED)
    ]
    blocks = (_sub_result_block(prefix, result, sub) for result, sub in failed)
    return _not_copied(budget, len(failed), blocks, left)


def _sub_result_block(prefix: str, result: ImageResult, sub: SubResult) -> list[str]:
    return [
        f"**{OUTCOME_SYMBOL[sub.outcome]} {sub.kind} {code(_relative(prefix, sub.target), 120)}** "
        f"of {code(_relative(prefix, result.target), 80)}  ",
        _text(sub.message, REASON_IN_BLOCK, line=True),
    ]


def _created(
    budget: _Budget, prefix: str, results: Sequence[ImageResult], left: _Left
) -> list[str]:
    if not results:
        return []
    part = budget.part("creates")
    part.add([f"#### {OUTCOME_SYMBOL[Outcome.CREATED]} {plural(len(results), 'image')} created"])
    part.add([""])
    part.add(table(["target", "digest", "blobs", "signatures"]))
    shown = part.add_each([row(_created_cells(prefix, result))] for result in results)
    part.add([""])
    left.add("images created", len(results) - shown)
    return part.close()


def _created_cells(prefix: str, result: ImageResult) -> list[str]:
    t = result.transfer
    subs = Counter(s.outcome for s in result.subresults if s.kind != SIGNING)
    signed = sum(1 for s in result.subresults if s.kind == SIGNING and s.outcome is Outcome.CREATED)
    return [
        code(_relative(prefix, result.target), _TARGET_CELL),
        _short(result.digest),
        f"{t.copied} copied ({human_bytes(t.bytes_copied)}), {t.mounted} mounted, "
        f"{t.present} there",
        _with_signed(
            " ".join(f"{OUTCOME_SYMBOL[o]}{subs[o]}" for o in Outcome if subs[o]),
            signed,
            "signed",
        ),
    ]


def _with_signed(copied: str, signatures: int, verb: str) -> str:
    """``copied``, then how many signatures imagesync adds (or added) with its own key."""
    parts = [copied] if copied else []
    if signatures:
        parts.append(f"{verb} {signatures:,}")
    return "; ".join(parts) or "-"
