"""Property-based tests (hypothesis): whatever a user or a file throws at imagesync's readers,
the answer is a value or one of the documented errors, and every rejection is located and
explained. No traceback, ever.

- images files: generated YAML-ish documents, plausible ones, near-misses and raw text;
  through ``load_images_file`` and through ``imagesync validate`` (CliRunner);
- references: random text and near-valid names through ``parse_reference``;
- plan documents: random JSON and mutations of a real plan through ``Plan.from_document``, and
  the mutated files through ``imagesync apply`` (refused before any request, "re-run plan").

Example counts stay modest (the suite must stay fast); a failure prints the example and a seed.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagesync.cli import main
from imagesync.errors import ConfigError, InvalidReference, PlanRejected
from imagesync.images.file import ImagesFile, InvalidImagesFile, load_images_file
from imagesync.plan.document import Action, Change, ImagesFileInfo, Plan, SubChange, checksum
from imagesync.reference import Reference, parse_reference

# IMAGESYNC_PROPERTY_SCALE=10 runs ten times the examples (a longer hunt before a release).
SCALE = max(1, int(os.environ.get("IMAGESYNC_PROPERTY_SCALE", "1")))
FAST = settings(
    max_examples=200 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SLOWER = settings(
    max_examples=100 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


# -- strategies ----------------------------------------------------------------------------

HOSTS = ["", "docker.io/", "ghcr.io/", "localhost:5000/", "127.0.0.1:5000/", "Reg.IO/", "a_b/"]
COMPONENTS = st.one_of(
    st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,4}){0,2}", fullmatch=True),
    st.sampled_from(["library", "busybox", "UPPER", "a..b", "-x", "x-", "__", ""]),
    st.text(alphabet=string.printable, max_size=6),
)
TAGS = st.one_of(
    st.from_regex(r"[\w][\w.-]{0,10}", fullmatch=True),
    st.sampled_from(["latest", "3.10", "1.0", ".hidden", "-x", "a" * 129, "", "v1 ", "ü"]),
)
DIGESTS = st.one_of(
    st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True),
    st.sampled_from(["sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64, "sha512:" + "b" * 128]),
)


@st.composite
def references(draw: st.DrawFn) -> str:
    """Near-valid references: a host, path components, maybe a tag, maybe a digest."""
    text = draw(st.sampled_from(HOSTS)) + "/".join(
        draw(st.lists(COMPONENTS, min_size=1, max_size=3))
    )
    if draw(st.booleans()):
        text += ":" + draw(TAGS)
    if draw(st.integers(0, 3)) == 0:
        text += "@" + draw(DIGESTS)
    return text


KEYS = st.one_of(
    st.sampled_from(
        ["source", "tag", "amd64Only", "amd64only", "Source", "tags", "target", "images", "image"]
    ),
    st.text(max_size=10),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    references(),
    st.sampled_from(["3.10", "yes", "~", "null", "0x1F", "2001-01-01", "1e3", "!", "&a", "*a"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
ENTRIES = st.one_of(
    st.fixed_dictionaries(
        {"source": st.one_of(references(), SCALARS)},
        optional={
            "tag": st.one_of(TAGS, SCALARS),
            "amd64Only": st.one_of(st.booleans(), SCALARS),
            "amd64only": st.booleans(),
        },
    ),
    VALUES,
)
PREFIXES = st.one_of(
    st.sampled_from(["reg.io/ext", "localhost:5000", "reg.io", "UPPER/x", "reg.io/a//b", ""]),
    references(),
    SCALARS,
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 4)) == 0:
        return draw(VALUES)  # anything at all
    document: dict[Any, Any] = {}
    if draw(st.integers(0, 3)):
        document["target"] = draw(PREFIXES)
    document["images"] = draw(st.one_of(st.lists(ENTRIES, max_size=5), SCALARS))
    for key, value in draw(st.dictionaries(KEYS, VALUES, max_size=2)).items():
        document.setdefault(key, value)
    return document


LINE_PARTS = [
    "target: reg.io/ext",
    "images:",
    "- source: busybox:1.36",
    '- source: "busybox@sha256:' + "a" * 64 + '"',
    "  tag: 3.10",
    "  tag: '1.0'",
    "  amd64Only: yes",
    "  amd64only: true",
    "\t- source: x",
    "  - ",
    "- &a {source: x}",
    "- *a",
    "- *missing",
    "  tag: !!binary aGVsbG8=",
    "  tag: !!python/object:os.system x",
    ": :",
    "'unclosed",
    '"unclosed',
    "---",
    "...",
    "%YAML 1.1",
    "# comment",
    "? complex",
    "- [a, b]",
    "- {source: busybox, tag: 1}",
    '- source: "\\U00110000"',
    "- source: busybox\x1f",
    "  tag: 2001-13-45",
    "  tag: 0x_",
    "- *b",
    "b: &b [*a, *a, *a]",
    "images: []",
    "target:",
]


@st.composite
def raw_texts(draw: st.DrawFn) -> bytes:
    """Text that need not be YAML: joined fragments, random characters, odd bytes."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    lines = draw(st.lists(st.sampled_from(LINE_PARTS) | st.text(max_size=15), max_size=10))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def images_file_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 2)) == 0:
        return draw(raw_texts())
    document = draw(documents())
    text = yaml.safe_dump(
        document,
        default_flow_style=draw(st.sampled_from([None, False, True])),
        allow_unicode=draw(st.booleans()),
        sort_keys=False,
    )
    if draw(st.booleans()):
        # A near miss: a few characters inserted, deleted or replaced.
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            edit = draw(st.sampled_from(["insert", "delete", "replace"]))
            char = draw(st.sampled_from([*":-'\"\t #&*!{}[]|>\n ", "ü"]))
            if edit == "insert":
                text = text[:at] + char + text[at:]
            elif edit == "delete":
                text = text[:at] + text[at + 1 :]
            else:
                text = text[:at] + char + text[at + 1 :]
    return text.encode("utf-8", "surrogatepass")


# -- images files --------------------------------------------------------------------------

NOT_LOCATED = (
    "no target: set `target:` in the file",  # may come from --target as well: no place
    "--target / -r / SYNCER_TARGET_REPO",  # about the command line, not the file
    "not valid YAML",  # a YAML error without a mark (none is known)
    "the file is larger than",  # the whole file
)


def check_problems(path: Path, data: bytes, error: InvalidImagesFile) -> None:
    lines = data.count(b"\n") + 1
    assert error.problems, "rejected without a single problem"
    assert error.errors, "rejected with warnings only"
    for problem in error.problems:
        assert problem.path == str(path)
        assert problem.message.strip(), problem
        if problem.line is None:
            assert problem.message.startswith(NOT_LOCATED), f"not located: {problem}"
        else:
            assert 1 <= problem.line <= lines + 1, f"line {problem.line} of {lines}: {problem}"
        if problem.entry_index is not None:
            assert problem.entry_index >= 1
        assert "Traceback" not in problem.message
        # One line per problem: what editors and CI logs turn into a link.
        assert "\n" not in str(problem), problem


@FAST
@given(data=images_file_bytes(), target=st.one_of(st.none(), st.just("reg.io/ext"), PREFIXES))
def test_load_images_file_gives_a_file_or_located_problems(
    workdir: Path, data: bytes, target: Any
) -> None:
    path = workdir / "external-images.yaml"
    path.write_bytes(data)
    override = target if isinstance(target, str) else None
    try:
        loaded = load_images_file(path, override)
    except InvalidImagesFile as error:
        check_problems(path, data, error)
        return
    except ConfigError as error:  # the file could not be read at all
        assert str(path) in error.message
        return
    assert isinstance(loaded, ImagesFile)
    for entry in loaded.entries:
        assert isinstance(entry.source, Reference)
        assert entry.target.tag, entry
        assert loaded.target_prefix.contains(entry.target.repository)
        # What was written as the tag is what lands: never YAML's reading of it.
        if entry.tag is not None:
            assert entry.target.tag == entry.tag
    for warning in loaded.warnings:
        assert not warning.is_error and warning.path == str(path)


PROBLEM_LINE = re.compile(r"^(?P<path>[^:]+):(?:(?P<line>\d+):)? ")


@SLOWER
@given(data=images_file_bytes())
# Found by this test: the hint repeated a carriage return raw, breaking its line in two.
@example(data=b'images: ["\\r"]\n')
def test_validate_never_shows_a_traceback_and_locates_every_line(
    workdir: Path, data: bytes
) -> None:
    path = workdir / "validate.yaml"
    path.write_bytes(data)
    result = CliRunner().invoke(main, ["validate", "-i", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), result.output
    lines = result.stderr.splitlines()
    for line in lines:
        assert line.startswith(f"{path}:"), f"not located: {line!r}"
    if result.exit_code == 1:
        assert lines and re.fullmatch(
            rf"{re.escape(str(path))}: not valid, \d+ errors?.*", lines[-1]
        )
        assert result.stdout == ""
    else:
        assert re.fullmatch(rf"{re.escape(str(path))}: \d+ images?, valid.*\n", result.stdout)


# -- references ----------------------------------------------------------------------------


@FAST
@given(text=st.one_of(st.text(max_size=80), references()))
def test_parse_reference_gives_a_reference_or_says_why_not(text: str) -> None:
    try:
        reference = parse_reference(text)
    except InvalidReference as error:
        assert error.message.strip() and error.hint
        return
    # What it parsed to is a name it reads back the same way.
    again = parse_reference(str(reference))
    assert again == reference
    assert str(again) == str(reference)
    assert reference.tag or reference.digest or reference.identifier == "latest"


@FAST
@given(value=st.one_of(st.none(), st.integers(), st.binary(max_size=10), st.lists(st.text())))
def test_parse_reference_refuses_what_is_not_text(value: Any) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(value)


# -- plan documents ------------------------------------------------------------------------

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64
PREFIX = "127.0.0.1:9/mirror"  # the discard port: nothing is ever there


def real_plan(images: Path) -> dict[str, Any]:
    """A plan as plan writes it: a create with a signature, a skip, an error."""
    target = f"{PREFIX}/127.0.0.1-9/team/app"
    plan = Plan(
        tool_version="0.1.0",
        created="2026-01-01T00:00:00Z",
        target_prefix=PREFIX,
        images_file=ImagesFileInfo(str(images), "d" * 64),
        changes=(
            Change(
                entry=1,
                line=3,
                source_text="127.0.0.1:9/team/app:1.0",
                source="127.0.0.1:9/team/app:1.0",
                target=f"{target}:1.0",
                action=Action.CREATE,
                reason="not in the target",
                digest=DIGEST_A,
                media_type="application/vnd.oci.image.index.v1+json",
                platforms=("linux/amd64", "linux/arm64"),
                blobs_to_transfer=4,
                bytes_to_transfer=4096,
                subchanges=(
                    SubChange(
                        kind="signature",
                        source="127.0.0.1:9/team/app:sha256-" + "a" * 64 + ".sig",
                        target=f"{target}:sha256-" + "a" * 64 + ".sig",
                        digest=DIGEST_C,
                        media_type="application/vnd.oci.image.manifest.v1+json",
                        action=Action.CREATE,
                        reason="not in the target",
                        subject=DIGEST_A,
                        size=500,
                    ),
                ),
            ),
            Change(
                entry=2,
                line=4,
                source_text="127.0.0.1:9/team/app:2.0",
                source="127.0.0.1:9/team/app:2.0",
                target=f"{target}:2.0",
                action=Action.SKIP,
                reason="already in the target",
                digest=DIGEST_B,
                media_type="application/vnd.oci.image.index.v1+json",
                target_digest=DIGEST_B,
            ),
            Change(
                entry=3,
                line=5,
                source_text="127.0.0.1:9/team/gone:1.0",
                source="127.0.0.1:9/team/gone:1.0",
                target=f"{target.replace('app', 'gone')}:1.0",
                action=Action.ERROR,
                reason="source not found",
                warnings=("a warning",),
            ),
        ),
        warnings=("a plan warning",),
    )
    document = plan.to_document()
    assert Plan.from_document(document) == plan
    return document


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
PLAN_VALUES = st.one_of(
    JSON,
    st.sampled_from(
        [
            0,
            -1,
            2**63,
            "",
            "create",
            "skip",
            "error",
            "conflict",
            "delete",
            DIGEST_B,
            "sha256:xyz",
            "UPPER/x",
            "!!!",
            "127.0.0.1:9/elsewhere/app:1.0",
            "127.0.0.1:9/mirror",
            "reg.io/mirror/x:1",
            "x" * 9000,
        ]
    ),
)


@st.composite
def plan_documents(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A real plan with one to three random edits; resealed (a fresh checksum) or not."""
    document = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(document) if p]
        path = draw(st.sampled_from(paths))
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        operation = draw(st.sampled_from(["replace", "delete", "add"]))
        if operation == "delete":
            del parent[path[-1]]
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(PLAN_VALUES)
        elif operation == "add":
            parent.append(draw(PLAN_VALUES))
        else:
            parent[path[-1]] = draw(PLAN_VALUES)
    resealed = draw(st.booleans())
    if resealed and isinstance(document, dict):
        document["checksum"] = checksum(document)
    return document, resealed


@pytest.fixture(scope="module")
def base_plan(workdir: Path) -> dict[str, Any]:
    return real_plan(workdir / "images.yaml")


@FAST
@given(data=st.data())
def test_plan_from_document_accepts_or_says_why(base_plan: dict[str, Any], data: Any) -> None:
    document, resealed = data.draw(
        st.one_of(plan_documents(base_plan), JSON.map(lambda value: (value, False)))
    )
    try:
        plan = Plan.from_document(document, "plan.json")
    except PlanRejected as error:
        assert error.message.startswith("plan.json"), error.message
        assert error.hint and "re-run plan" in error.hint
        assert len(error.message) < 1000, error.message[:2000]
        return
    # Accepted: the edit kept it a plan; it reads back to the same document (the mount
    # figures and artifact types, which plans made before them lack, read as 0 and empty and
    # are written out).
    assert resealed or document == base_plan
    written = plan.to_document()
    for change, change_written in zip(document["changes"], written["changes"], strict=True):
        for key in ("blobs_to_mount", "bytes_to_mount", "artifact_types"):
            if key not in change:
                change[key] = change_written[key]
                document["checksum"] = checksum(document)
    assert written == document


@SLOWER
@given(data=st.data())
def test_apply_refuses_a_changed_plan_before_any_request(
    workdir: Path, base_plan: dict[str, Any], data: Any
) -> None:
    document, _ = data.draw(plan_documents(base_plan))
    try:
        Plan.from_document(document)
    except PlanRejected:
        refused = True
    else:
        refused = False
    path = workdir / "plan.json"
    path.write_text(json.dumps(document))
    with mock.patch(
        "imagesync.stores.registry.transport.Transport.request", side_effect=AssertionError
    ) as sent:
        result = CliRunner().invoke(main, ["apply", str(path), "--retries", "1"])
    if not refused:
        return  # a plan that is still a plan: applying it is apply's business, not this test's
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{result.output}"
    )
    assert result.exit_code == 1
    assert "re-run plan" in result.stderr
    assert "Traceback" not in result.output
    assert not sent.called


# -- what PyYAML lets through, located by the loader ----------------------------------------
# Each once escaped as a traceback or as an unlocated two-line message.


def test_a_unicode_escape_beyond_the_last_code_point_is_a_located_error(workdir: Path) -> None:
    path = workdir / "escape.yaml"
    path.write_bytes(b'target: reg.io/x\nimages:\n- source: "\\U00110000"\n')
    with pytest.raises(InvalidImagesFile) as raised:
        load_images_file(path)
    (problem,) = raised.value.problems
    assert problem.line == 3
    assert "U+10FFFF" in problem.message and problem.hint


def test_a_control_character_is_a_located_one_line_error(workdir: Path) -> None:
    path = workdir / "control.yaml"
    path.write_bytes(b"target: reg.io/x\nimages:\n- source: busybox\x1f\n")
    with pytest.raises(InvalidImagesFile) as raised:
        load_images_file(path)
    (problem,) = raised.value.problems
    assert problem.line == 3 and "\n" not in str(problem)
    assert "U+001F" in problem.message and problem.hint


@pytest.mark.parametrize(
    ("key", "written"),
    [
        # A boolean field gets what YAML builds; a text field takes numbers and dates as
        # written, but not an explicit !!tag its characters do not fit.
        ("amd64Only", "2001-13-45"),
        ("amd64Only", "1" * 5000),
        ("tag", "!!int x"),
        ("tag", "!!float y"),
    ],
)
def test_a_scalar_yaml_cannot_build_is_a_located_error(
    workdir: Path, key: str, written: str
) -> None:
    path = workdir / "scalar.yaml"
    path.write_text(f"target: reg.io/x\nimages:\n- source: busybox:1\n  {key}: {written}\n")
    with pytest.raises(InvalidImagesFile) as raised:
        load_images_file(path)
    problem = raised.value.errors[0]
    assert problem.line == 4 and problem.entry_index == 1
    assert problem.message.startswith("YAML cannot read"), problem
    assert len(str(problem)) < 300, problem
