"""Loading and checking the images file: located problems, all of them, never a guessed value."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from imagesync.diagnostics import Problem, Severity
from imagesync.errors import ConfigError, ImagesyncError
from imagesync.images.file import (
    TAG_RULE,
    ImageEntry,
    ImagesFile,
    InvalidImagesFile,
    images_schema,
    load_images_file,
)
from imagesync.reference import Repository, parse_layout_tree

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "external-images.yaml"
BAD = sorted((REPO / "examples" / "bad").glob("*.yaml"))
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
# "3.1" not followed by another digit: YAML's reading of `tag: 3.10`.
THREE_POINT_ONE = re.compile(r"3\.1(?![0-9])")


def expectations(path: Path) -> list[str]:
    """The `# expect: …` comments of a bad example: what validate must say, located."""
    return re.findall(r"^# expect: (.+)$", path.read_text(encoding="utf-8"), flags=re.M)


def located(path: Path | str, expectation: str) -> str:
    """``file:line: …`` for expectations that start with a line number, ``file: …`` otherwise."""
    return f"{path}:{expectation}" if expectation[0].isdigit() else f"{path}: {expectation}"


def write(tmp_path: Path, text: str, name: str = "external-images.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, target: str | None = "reg.io/ext") -> tuple[Problem, ...]:
    with pytest.raises(InvalidImagesFile) as caught:
        load_images_file(path, target)
    return caught.value.problems


# -- the example and real-world files ----------------------------------------------------------


def test_the_example_is_valid() -> None:
    images = load_images_file(EXAMPLE)
    assert isinstance(images, ImagesFile)
    assert images.path == EXAMPLE
    assert images.sha256 == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert images.target_prefix == Repository("registry.example.com", "prod/external")
    assert images.warnings == ()
    assert [e.index for e in images.entries] == [1, 2, 3, 4, 5]
    busybox = images.entries[2]
    assert busybox.source_text.startswith("busybox@sha256:31a54a0c")
    assert busybox.tag == "1.32.0-v1"
    assert str(busybox.target) == "registry.example.com/prod/external/library/busybox:1.32.0-v1"
    assert busybox.line == 10
    assert [e.amd64_only for e in images.entries] == [False, False, False, True, True]
    assert str(images.entries[1].target) == (
        "registry.example.com/prod/external/bitnami/postgres-exporter:0.8.0-debian-10-r28"
    )


def test_the_seed_example_loads_with_a_target_from_the_command_line(tmp_path: Path) -> None:
    # The image-syncer's README example, byte for byte: same YAML must work.
    seed = write(
        tmp_path,
        """images:
- source: "bitnami/keycloak-gatekeeper:9.0.3"
- source: "bitnami/postgres-exporter:0.8.0-debian-10-r28"
- source: "busybox@sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab"
  tag: "1.32.0-v1"
- source: "bitnami/postgres-exporter:0.11.1-debian-11-r69"
  amd64Only: true
- source: "postgres@sha256:9d7ec48fe46e8bbce55deafff58080e49d161a3ed92e67f645014bb50dc599fd"
  tag: "v20230508-11.19-alpine3.17"
  amd64Only: true
""",
    )
    images = load_images_file(seed, "europe-docker.pkg.dev/kyma-project/prod/external")
    assert len(images.entries) == 5
    assert str(images.entries[4].target) == (
        "europe-docker.pkg.dev/kyma-project/prod/external/library/postgres:v20230508-11.19-alpine3.17"
    )


REAL_WORLD = """\
# Docs: https://github.com/kyma-project/test-infra/tree/main/cmd/image-syncer

images:
  - source: "fluent/fluent-bit@sha256:{fluent}"
    tag: "5.0.6" # used by the kyma telemetry module
  - source: "rancher/k3s@sha256:08fdebd14db9ab7d5ea821d5bfa95d02341a6ef886842fcc8d9dfd0e9fa9e0cd"
    tag: "v1.36.1-k3s1" # used by k3d - current k8s version
  - source: "rancher/k3s@sha256:08fdebd14db9ab7d5ea821d5bfa95d02341a6ef886842fcc8d9dfd0e9fa9e0cd"
    tag: "v1.36.1-k3s1" # used by k3d - future k8s version
  - source: "library/registry@sha256:{registry}"
    tag: "3" # used by k3d
  # https://hub.docker.com/layers/library/node/22-alpine
  - source: golang@sha256:2d40d4fc278dad38be0777d5e2a88a2c6dee51b0b29c97a764fc6c6a11ca893c
    tag: 1.24.0-alpine3.2
    amd64Only: true
  - source: langfuse/langfuse@sha256:{langfuse}
    tag: 3.28.3
    amd64Only: True
  - source: 'ghcr.io/kedacore/keda:2.20.2'
  - source: quay.io/prometheuscommunity/avalanche
    tag: "v0.7.0" # used by the metrics agent test
""".format(
    # Digests from the kyma-project files, kept out of the text to keep its lines short.
    fluent="1abcf78fe8c9dee0c57fc2199693370a5a1f84e0af4716beddcd153b40cbbbb1",
    registry="85347ed2ecde64161c7a4788a4d7d3dcc9d6f86f7be95834022e3c6a423a945a",
    langfuse="30a586389ff038f43b3ab9bcd54e33720fe77f583b790362c1db6a324513ae3e",
)


def test_real_world_file(tmp_path: Path) -> None:
    images = load_images_file(
        write(tmp_path, REAL_WORLD), "europe-docker.pkg.dev/kyma/prod/external"
    )
    prefix = "europe-docker.pkg.dev/kyma/prod/external"
    assert [str(e.target) for e in images.entries] == [
        f"{prefix}/fluent/fluent-bit:5.0.6",
        f"{prefix}/rancher/k3s:v1.36.1-k3s1",
        f"{prefix}/rancher/k3s:v1.36.1-k3s1",
        f"{prefix}/library/registry:3",
        f"{prefix}/library/golang:1.24.0-alpine3.2",
        f"{prefix}/langfuse/langfuse:3.28.3",
        f"{prefix}/ghcr.io/kedacore/keda:2.20.2",
        f"{prefix}/quay.io/prometheuscommunity/avalanche:v0.7.0",
    ]
    # Unquoted tags that YAML keeps as text stay exactly as written.
    assert images.entries[5].tag == "3.28.3"
    assert images.entries[5].amd64_only is True
    assert images.entries[3].source.path == "library/registry"
    warnings = [str(w) for w in images.warnings]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{tmp_path / 'external-images.yaml'}:8: entry 3: warning: ")
    assert "repeats entry 2 (line 6)" in warnings[0]
    assert "listed twice, synced once" in warnings[0]
    assert (
        ":20: entry 8: warning: source quay.io/prometheuscommunity/avalanche has neither"
        in (warnings[1])
    )
    assert all(w.severity is Severity.WARNING for w in images.warnings)
    assert images.entries[2].sync_key == images.entries[1].sync_key


def test_library_prefix_and_short_name_are_the_same_image(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'images:\n- source: "busybox:1.36"\n- source: "library/busybox:1.36"\n'
        '- source: "docker.io/library/busybox:1.36"\n',
    )
    images = load_images_file(path, "reg.io/ext")
    # The first two land on one target: a duplicate. The third keeps its written host.
    assert [str(w).split(": ", 1)[1] for w in images.warnings] == [
        "entry 2: warning: repeats entry 1 (line 2): same source, same target "
        "reg.io/ext/library/busybox:1.36; listed twice, synced once (fix: remove one of the two "
        "entries)"
    ]
    assert str(images.entries[2].target) == "reg.io/ext/docker.io/library/busybox:1.36"


def test_latest_written_or_not_is_one_image(tmp_path: Path) -> None:
    path = write(tmp_path, "images:\n- source: busybox\n- source: busybox:latest\n")
    images = load_images_file(path, "reg.io/ext")
    assert [w.entry_index for w in images.warnings] == [1, 2]
    assert images.warnings[1].message.startswith("repeats entry 1")


def test_tag_with_digest_in_the_source_needs_no_tag_key(tmp_path: Path) -> None:
    path = write(tmp_path, f'images:\n- source: "busybox:1.36@{DIGEST_A}"\n')
    (entry,) = load_images_file(path, "reg.io/ext").entries
    assert entry.source.digest == DIGEST_A
    assert str(entry.target) == "reg.io/ext/library/busybox:1.36"


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "external-images.yaml"
    path.write_bytes(b'\xef\xbb\xbfimages:\r\n- source: "busybox:1.36"\r\n')
    assert len(load_images_file(path, "reg.io/ext").entries) == 1


# -- the target ------------------------------------------------------------------------------


def test_target_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'target: reg.io/from-file\nimages:\n- source: "busybox:1.36"\n')
    assert load_images_file(path).target_prefix == Repository("reg.io", "from-file")


def test_override_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'target: reg.io/from-file\nimages:\n- source: "busybox:1.36"\n')
    images = load_images_file(path, "localhost:5000/mirror")
    assert images.target_prefix == Repository("localhost:5000", "mirror")
    assert str(images.entries[0].target) == "localhost:5000/mirror/library/busybox:1.36"


def test_empty_override_is_no_override(tmp_path: Path) -> None:
    path = write(tmp_path, 'target: reg.io/from-file\nimages:\n- source: "busybox:1.36"\n')
    assert load_images_file(path, "").target_prefix == Repository("reg.io", "from-file")


def test_missing_target_is_an_error_and_other_problems_still_show(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'images:\n- source: "busybox:1.36"\n  tag: "a"\n- source: "busybox:1.37"\n  tag: "a"\n',
    )
    problems = problems_of(path, None)
    messages = [str(p) for p in problems]
    assert messages[0] == (
        f"{path}: no target: set `target:` in the file, --target / -r, or SYNCER_TARGET_REPO / "
        "SYNCER_TARGET_REPO_PREFIX (fix: for example target: registry.example.com/external)"
    )
    # Collisions do not depend on the prefix, so they are found without one.
    assert messages[1].startswith(f"{path}:4: entry 2: maps to <target>/library/busybox:a like")
    assert "target.invalid" not in "\n".join(messages)


def test_invalid_override_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, 'images:\n- source: "busybox:1.36"\n')
    (problem,) = problems_of(path, "Reg.io/UPPER")
    assert problem.line is None
    assert "--target / -r / SYNCER_TARGET_REPO 'Reg.io/UPPER'" in problem.message
    assert "upper-case" in problem.message


def test_target_without_host_warns(tmp_path: Path) -> None:
    path = write(tmp_path, 'target: mirror\nimages:\n- source: "busybox:1.36"\n')
    images = load_images_file(path)
    assert images.target_prefix == Repository("docker.io", "mirror")
    assert "has no registry host" in images.warnings[0].message
    assert images.warnings[0].line == 1


# -- every bad example -----------------------------------------------------------------------


def test_there_are_bad_examples() -> None:
    assert len(BAD) >= 20
    assert all(expectations(path) for path in BAD), "each bad example says what to expect"


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_example_is_refused_with_located_messages(path: Path) -> None:
    with pytest.raises(InvalidImagesFile) as caught:
        load_images_file(path)
    error = caught.value
    assert error.errors
    rendered = [str(p) for p in error.problems]
    for expectation in expectations(path):
        needle = located(path, expectation)
        assert any(line.startswith(needle) or needle in line for line in rendered), (
            f"{needle!r} not in {rendered}"
        )
    # Every error has a fix, and the exception's message carries every problem.
    assert all(p.hint for p in error.problems)
    assert all(str(p) in str(error) for p in error.problems)
    assert isinstance(error, ConfigError)
    assert isinstance(error, ImagesyncError)


def test_several_problems_are_all_reported_in_file_order() -> None:
    path = REPO / "examples" / "bad" / "several-problems.yaml"
    problems = problems_of(path, None)
    assert [(p.line, p.entry_index, p.severity.value) for p in problems] == [
        (None, None, "error"),
        (10, 1, "error"),
        (12, 2, "error"),
        (13, 3, "error"),
        (14, 4, "error"),
        (15, 5, "warning"),
    ]


# -- tag: 3.10 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["3.10", "1.10", "1.20", "3", "1", "010", "1e3", "1_000", "0x1F", "yes", "on", "2024-01-31"],
)
def test_tags_are_read_as_written(tmp_path: Path, written: str) -> None:
    """The image-syncer (Go, yaml.v3 into a string field) took the scalar's characters: so
    does imagesync, wherever YAML would have made a number, a date or a YAML 1.1 boolean."""
    path = write(
        tmp_path,
        f"target: reg.io/ext\nimages:\n- source: busybox@{DIGEST_A}\n  tag: {written}\n",
    )
    images = load_images_file(path)
    (entry,) = images.entries
    assert entry.tag == written
    assert str(entry.target) == f"reg.io/ext/library/busybox:{written}"
    assert images.warnings == ()


@pytest.mark.parametrize(
    ("written", "message", "hint"),
    [
        ("true", "tag true is not text: YAML reads it as a boolean", 'quote it: tag: "true"'),
        ("False", "tag False is not text: YAML reads it as a boolean", 'quote it: tag: "False"'),
        ("~", "tag is empty", "write the tag or remove the key"),
        ("", "tag is empty", "write the tag or remove the key"),
        ("[a]", "tag must be text, not a list", 'write tag: "<value>"'),
        ("{a: b}", "tag must be text, not a mapping", 'write tag: "<value>"'),
        # As written, and then not a tag by the tag grammar.
        (".inf", "tag '.inf' is not valid", TAG_RULE),
        ("-1", "tag '-1' is not valid", TAG_RULE),
    ],
)
def test_tags_that_are_not_text_or_not_tags_are_refused(
    tmp_path: Path, written: str, message: str, hint: str
) -> None:
    path = write(
        tmp_path,
        f"target: reg.io/ext\nimages:\n- source: busybox@{DIGEST_A}\n  tag: {written}\n",
    )
    (problem,) = problems_of(path, None)
    assert (problem.line, problem.entry_index) == (4, 1)
    assert (problem.message, problem.hint) == (message, hint)


def test_tag_three_point_ten_never_becomes_three_point_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'target: reg.io/ext\nimages:\n- source: "python@{DIGEST_A}"\n  tag: 3.10\n'
        f'- source: "python@{DIGEST_B}"\n  tag: "3.10-alpine"\n',
    )
    images = load_images_file(path)
    assert [e.tag for e in images.entries] == ["3.10", "3.10-alpine"]
    assert str(images.entries[0].target) == "reg.io/ext/library/python:3.10"
    assert not THREE_POINT_ONE.search(repr(images))


def test_other_text_fields_are_read_as_written_and_amd64only_stays_a_boolean(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "target: 10.0.0.1:5000\nimages:\n- source: 12\n  tag: 1.0\n  amd64Only: yes\n",
    )
    (entry,) = load_images_file(path).entries
    assert (entry.source_text, entry.tag, entry.amd64_only) == ("12", "1.0", True)
    assert str(entry.target) == "10.0.0.1:5000/library/12:1.0"
    wrong = write(
        tmp_path, "target: reg.io/ext\nimages:\n- source: a:1\n  amd64Only: 1\n", "wrong.yaml"
    )
    (problem,) = problems_of(wrong)
    assert problem.message == "amd64Only must be true or false, not '1'"


# -- targetRepoPrefix ------------------------------------------------------------------------


def test_target_repo_prefix_is_the_target(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'targetRepoPrefix:  "europe-docker.pkg.dev/kyma-project/prod/external/"\n'
        'images:\n- source: "busybox:1.36"\n',
    )
    images = load_images_file(path)
    assert images.target_prefix == Repository("europe-docker.pkg.dev", "kyma-project/prod/external")
    assert str(images.entries[0].target) == (
        "europe-docker.pkg.dev/kyma-project/prod/external/library/busybox:1.36"
    )
    assert load_images_file(path, "reg.io/ext").target_prefix == Repository("reg.io", "ext")


def test_target_and_target_repo_prefix_may_agree(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'target: reg.io/ext\ntargetRepoPrefix: "reg.io/ext/"\nimages:\n- source: "busybox:1"\n',
    )
    images = load_images_file(path)
    assert images.target_prefix == Repository("reg.io", "ext")
    assert images.warnings == ()


def test_target_and_target_repo_prefix_that_differ_are_an_error_naming_both_lines(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        'images:\n- source: "busybox:1"\ntargetRepoPrefix: "a.io/x/"\ntarget: b.io/y\n',
    )
    # Even with --target given: the file itself says two things.
    (problem,) = problems_of(path, "reg.io/ext")
    assert problem.line == 4
    assert problem.message == (
        "targetRepoPrefix: (line 3) and target: (line 4) name different prefixes, a.io/x and b.io/y"
    )
    assert problem.hint == (
        "keep one of them; targetRepoPrefix is the image-syncer's older name for target"
    )


# -- individual checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "line", "message", "hint"),
    [
        (
            "- source: busybox:1\n  amd64only: true",
            4,
            "unknown key 'amd64only': did you mean amd64Only?",
            "rename it to amd64Only",
        ),
        (
            "- source: busybox:1\n  tags: v1",
            4,
            "unknown key 'tags': did you mean tag?",
            "rename it to tag",
        ),
        (
            "- source: busybox:1\n  arch: amd64",
            4,
            "unknown key 'arch' (it would be ignored)",
            "the known keys are source, tag, amd64Only",
        ),
        (
            "- source: busybox:1\n  amd64Only: 1",
            4,
            "amd64Only must be true or false, not '1'",
            "write amd64Only: true or amd64Only: false",
        ),
        (
            "- source: busybox:1\n  amd64Only:",
            4,
            "amd64Only is empty",
            "write the amd64Only or remove the key",
        ),
        ("- source:", 3, "source is empty", "write the source or remove the key"),
        ('- source: ""', 3, "source is empty", "write the source or remove the key"),
        (
            "- source: true",
            3,
            "source true is not text: YAML reads it as a boolean",
            'quote it: source: "true"',
        ),
        ("- source: [busybox]", 3, "source must be text, not a list", 'write source: "<value>"'),
        (
            "- source: busybox:1\n  tag: [a]",
            4,
            "tag must be text, not a list",
            'write tag: "<value>"',
        ),
        (
            "- source: busybox:1\n  tag: 'v 1'",
            4,
            "tag 'v 1' is not valid",
            "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        ),
        (
            "-",
            3,
            "the entry is empty (null), not a mapping with `source:`",
            'write each entry as - source: "<image>"',
        ),
        (
            "- [busybox]",
            3,
            "the entry is a list, not a mapping with `source:`",
            'write each entry as - source: "<image>"',
        ),
        (
            "- source: ' busybox:1'",
            3,
            "source ' busybox:1': ' busybox:1' has surrounding white space",
            "remove the spaces",
        ),
        (
            f"- source: busybox@{DIGEST_A[:-2]}\n  tag: v1",
            3,
            "has 62 hex characters, sha256 needs 64",
            "copy the whole digest",
        ),
    ],
)
def test_entry_problem(tmp_path: Path, entry: str, line: int, message: str, hint: str) -> None:
    path = write(tmp_path, f"target: reg.io/ext\nimages:\n{entry}\n")
    (problem,) = problems_of(path, None)
    assert problem.line == line
    assert problem.entry_index == 1
    assert message in problem.message
    assert problem.hint is not None and problem.hint.startswith(hint)


def test_conflict_names_both_entries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "target: reg.io/ext\nimages:\n"
        f"- source: busybox@{DIGEST_A}\n  tag: v1\n"
        "- source: alpine:3.20\n"
        f"- source: busybox@{DIGEST_B}\n  tag: v1\n",
    )
    (problem,) = problems_of(path, None)
    assert (problem.line, problem.entry_index) == (6, 3)
    assert str(problem).startswith(
        f"{path}:6: entry 3: maps to reg.io/ext/library/busybox:v1 like entry 1 (line 3), "
        "but from another source"
    )
    assert DIGEST_A in problem.message and DIGEST_B in problem.message


def test_same_tag_from_a_source_tag_and_a_tag_key_collide(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "images:\n- source: alpine:3.20\n- source: alpine:3.19\n  tag: '3.20'\n",
    )
    (problem,) = problems_of(path, "reg.io/ext")
    assert (problem.line, problem.entry_index) == (3, 2)
    assert "like entry 1 (line 2)" in problem.message


def test_upper_case_first_component_is_a_host_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "images:\n- source: Bitnami/redis:7\n")
    images = load_images_file(path, "reg.io/ext")
    assert images.entries[0].source.registry == "Bitnami"
    assert "read as a registry host only because it has capital letters" in (
        images.warnings[0].message
    )
    assert images.warnings[0].hint == "for Docker Hub, write it in lower case: bitnami/…"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("images:\n- source: a\n  tag: 'x\n", 3, "the quote ' opened on line 3 is not closed"),
        ("images: [\n", 2, "not valid YAML"),
        ("---\nimages: []\n---\nimages: []\n", 3, "expected a single document"),
        ("", 1, "the file is empty"),
        ("# only a comment\n", 1, "the file is empty"),
        ("images:\n", 1, "the images list is empty"),
        ("images: {source: busybox}\n", 1, "`images` must be a list of entries, not a mapping"),
        ("busybox:1.36\n", 1, "the file must be a mapping with an `images:` list, not the text"),
        ("images:\n- source: a:1\nimages:\n- source: b:1\n", 3, "key 'images' appears twice"),
        ("images:\n- &e {source: a:1}\n- *e\n", 2, "repeats entry 1"),
        ("images:\n- source: !!binary aGVsbG8=\n", 2, "source aGVsbG8= is not text"),
        ("images:\n- source: !custom busybox\n", 2, "YAML cannot read 'busybox'"),
        ("images:\n- ? [a]\n  : b\n  source: a:1\n", 2, "a key must be a plain name"),
        ("images:\n- source: a:1\n<<: {x: 1}\n", 3, "unknown key '<<'"),
    ],
)
def test_file_problem(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    try:
        images = load_images_file(path, "reg.io/ext")
    except InvalidImagesFile as error:
        found = error.problems
    else:
        found = images.warnings
    assert any(p.line == line and message in p.message for p in found), [str(p) for p in found]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "external-images.yaml"
    path.write_bytes(b'images:\n- source: "busybox:1.36"\n  tag: "caf\xe9"\n')
    (problem,) = problems_of(path)
    assert problem.line == 3
    assert "not UTF-8" in problem.message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_images_file(missing)
    assert not isinstance(caught.value, InvalidImagesFile)
    assert str(missing) in caught.value.message
    assert "-i/--images-file" in (caught.value.hint or "")


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the images file"):
        load_images_file(tmp_path)


# -- types and the schema --------------------------------------------------------------------


def test_problem_rendering() -> None:
    problem = Problem(
        "external-images.yaml", 12, 3, "tag 3.10 is not text", 'quote it: tag: "3.10"'
    )
    assert str(problem) == (
        'external-images.yaml:12: entry 3: tag 3.10 is not text (fix: quote it: tag: "3.10")'
    )
    warning = Problem("f.yaml", 2, None, "careful", None, Severity.WARNING)
    assert str(warning) == "f.yaml:2: warning: careful"
    assert str(Problem("f.yaml", None, None, "no target")) == "f.yaml: no target"


def test_entries_are_frozen() -> None:
    entry = load_images_file(EXAMPLE).entries[0]
    assert isinstance(entry, ImageEntry)
    with pytest.raises(AttributeError):
        entry.tag = "x"  # type: ignore[misc]


def test_schema_is_valid_and_is_the_published_file() -> None:
    schema = images_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["image"]["additionalProperties"] is False
    published = json.loads((REPO / "schemas" / "images.schema.json").read_text(encoding="utf-8"))
    assert published == schema


def test_schema_accepts_the_example_and_refuses_unknown_keys() -> None:
    import yaml

    validator = Draft202012Validator(images_schema())
    assert not list(validator.iter_errors(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))))
    bad = {"images": [{"source": "busybox:1", "amd64only": True}]}
    assert [e.validator for e in validator.iter_errors(bad)] == ["additionalProperties"]


def test_a_source_that_is_a_layout_is_an_error_that_names_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, 'images:\n- source: "oci:/mnt/disk/library/alpine:3.20"\n')
    (problem,) = problems_of(path)
    assert "is an OCI layout: sources are images in registries" in problem.message
    assert "--source-layout DIR" in (problem.hint or "")


def test_a_layout_tree_is_a_target_and_a_source(tmp_path: Path) -> None:
    path = write(tmp_path, 'target: oci:mirror\nimages:\n- source: "alpine:3.20"\n  tag: v2\n')
    images = load_images_file(path, source_layout=parse_layout_tree(str(tmp_path / "disk")))
    (entry,) = images.entries
    assert images.target_prefix.is_layout
    assert entry.target.repository.path.endswith("/mirror/library/alpine")
    assert str(entry.origin) == f"oci:{tmp_path}/disk/library/alpine:v2"
    assert str(entry.source) == "docker.io/library/alpine:3.20"


# -- the two YAML parsers ------------------------------------------------------------------------

REALWORLD_FILES = sorted((REPO / "tests" / "realworld").glob("*.yaml"))


def _composed_by(loader_class: type, text: str, whole: bool = False) -> list[tuple[object, ...]]:
    """Every node of the document in order: kind, tag, value (scalars), line, column, and
    whether it was quoted: all the loader uses."""
    from imagesync.images import yamlnodes

    root = yamlnodes._compose(loader_class(text), whole=whole)
    seen: list[tuple[object, ...]] = []

    def walk(node: object) -> None:
        mark = node.start_mark  # type: ignore[attr-defined]
        quoted = bool(getattr(node, "style", None))
        value = node.value if isinstance(node.value, str) else None  # type: ignore[attr-defined]
        seen.append((type(node).__name__, node.tag, value, mark.line, mark.column, quoted))  # type: ignore[attr-defined]
        if isinstance(node.value, list):  # type: ignore[attr-defined]
            for item in node.value:  # type: ignore[attr-defined]
                for part in item if isinstance(item, tuple) else (item,):
                    walk(part)

    walk(root)
    return seen


@pytest.mark.parametrize(
    "path",
    [EXAMPLE, *REALWORLD_FILES],
    ids=lambda p: p.name.split("__")[-2] if "__" in p.name else p.name,
)
def test_libyaml_and_pyyaml_compose_the_same_document(path: Path) -> None:
    """The fast parser reads what users' files say exactly as PyYAML's does: same nodes,
    tags, values, positions and quoting (libyaml's plain style "" is PyYAML's None)."""
    from imagesync.images.yamlnodes import FastLoader, Loader

    text = path.read_text(encoding="utf-8-sig")
    exactly = _composed_by(Loader, text)
    assert _composed_by(FastLoader, text) == exactly
    assert _composed_by(FastLoader, text, whole=True) == exactly


def test_what_libyaml_refuses_is_reported_in_plain_words(tmp_path: Path) -> None:
    path = write(tmp_path, 'target: reg.io/ext\nimages:\n- source: "busybox:1.36"\n\ttag: "x"\n')
    (problem,) = problems_of(path)
    assert problem.line == 4
    assert problem.message == "line 4 is indented with a tab; YAML indents with spaces only"
    assert problem.hint == "replace the tab with spaces"


def test_a_tab_after_a_colon_is_read_as_gos_yaml_reads_it(tmp_path: Path) -> None:
    """YAML allows a tab as the space after ``key:``; libyaml (and so Go's yaml.v3, which
    the image-syncer used) takes it, PyYAML alone did not."""
    images = load_images_file(
        write(tmp_path, 'target: reg.io/ext\nimages:\n- source:\t"busybox:1.36"\n')
    )
    assert str(images.entries[0].target) == "reg.io/ext/library/busybox:1.36"


def test_validate_of_ten_thousand_entries_reads_them_all(tmp_path: Path) -> None:
    """Scale, not speed (benchmarks/run.py times it): every entry is read and located."""
    lines = ["target: reg.io/ext", "images:"]
    lines += [f'- source: "ghcr.io/org/app-{n}:1.0"' for n in range(10_000)]
    lines.append('- source: "busybox:1.36"\n  amd64only: true')
    with pytest.raises(InvalidImagesFile) as caught:
        load_images_file(write(tmp_path, "\n".join(lines) + "\n"))
    (problem,) = caught.value.problems
    assert (problem.line, problem.entry_index) == (10_004, 10_001)
    assert "did you mean amd64Only" in problem.message
