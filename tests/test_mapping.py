"""The target mapping, row by row from design.md §2, plus the property that holds for all rows."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from imagesync.errors import InvalidReference
from imagesync.images.mapping import (
    layout_source,
    target_reference,
    target_repository,
    target_tag,
)
from imagesync.reference import Reference, parse_reference, parse_registry_prefix

DIGEST = "sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab"
PREFIX = parse_registry_prefix("reg.io/ext")


@pytest.mark.parametrize(
    ("source", "tag", "target"),
    [
        ("busybox:1.36", None, "reg.io/ext/library/busybox:1.36"),
        ("bitnami/postgres-exporter:0.8.0", None, "reg.io/ext/bitnami/postgres-exporter:0.8.0"),
        (f"busybox@{DIGEST}", "1.32.0-v1", "reg.io/ext/library/busybox:1.32.0-v1"),
        ("ghcr.io/kedacore/keda:2.20.2", None, "reg.io/ext/ghcr.io/kedacore/keda:2.20.2"),
        ("quay.io/org/app", "v0.7.0", "reg.io/ext/quay.io/org/app:v0.7.0"),
        ("alpine:3.20", "3.20-v2", "reg.io/ext/library/alpine:3.20-v2"),
        ("localhost:5000/team/app:1.0", None, "reg.io/ext/localhost-5000/team/app:1.0"),
    ],
)
def test_design_table(source: str, tag: str | None, target: str) -> None:
    assert str(target_reference(parse_reference(source), tag, PREFIX)) == target


def test_tagless_source_reads_latest_and_keeps_no_tag() -> None:
    # The table's `quay.io/org/app` row: the source is read at :latest (the loader warns).
    source = parse_reference("quay.io/org/app")
    assert source.tag is None
    assert source.identifier == "latest"
    assert target_tag(source, None) == "latest"


def test_written_form_decides_not_the_normalised_one() -> None:
    # Existing mirrors were laid out on the name as written; keep them valid.
    assert str(target_repository(parse_reference("docker.io/library/busybox:1"), PREFIX)) == (
        "reg.io/ext/docker.io/library/busybox"
    )
    assert str(target_repository(parse_reference("library/busybox:1"), PREFIX)) == (
        "reg.io/ext/library/busybox"
    )


def test_upper_case_host_is_lowered_in_the_target() -> None:
    target = target_repository(parse_reference("Quay.IO/org/app:1"), PREFIX)
    assert str(target) == "reg.io/ext/quay.io/org/app"


def test_registry_only_prefix() -> None:
    prefix = parse_registry_prefix("localhost:5000")
    target = target_reference(parse_reference("busybox:1.36"), None, prefix)
    assert str(target) == "localhost:5000/library/busybox:1.36"


_COMPONENT = st.from_regex(r"[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,6}){0,2}", fullmatch=True)
_SOURCES = st.builds(
    lambda host, path, tag: f"{host}{'/'.join(path)}:{tag}",
    st.sampled_from(["", "ghcr.io/", "localhost:5000/", "quay.io/", "docker.io/"]),
    st.lists(_COMPONENT, min_size=1, max_size=3),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True),
)


@given(_SOURCES, st.sampled_from(["reg.io/ext", "localhost:5000", "reg.io/a/b", "docker.io/org"]))
def test_target_lies_below_the_prefix_and_keeps_the_tag(source_text: str, prefix_text: str) -> None:
    # A first component with a '.' is a registry host, and these are not valid ones.
    first = source_text.split("/", 1)[0]
    assume("/" not in source_text or "." not in first or first.endswith(".io"))
    source = parse_reference(source_text)
    prefix = parse_registry_prefix(prefix_text)
    target = target_reference(source, None, prefix)
    assert prefix.contains(target.repository)
    assert target.repository != prefix
    assert target.tag == source.tag
    assert isinstance(target, Reference)
    # The target is itself a valid, canonical reference.
    assert str(parse_reference(str(target))) == str(target)


def test_docker_hub_prefix_is_an_organisation() -> None:
    # `docker.io/myorg` is the myorg namespace, not library/myorg: targets go below it.
    prefix = parse_registry_prefix("docker.io/myorg")
    target = target_reference(parse_reference("busybox:1.36"), None, prefix)
    assert str(target) == "docker.io/myorg/library/busybox:1.36"


LAYOUTS = parse_registry_prefix("oci:/mnt/disk")


@pytest.mark.parametrize(
    ("source", "tag", "target"),
    [
        ("busybox:1.36", None, "oci:/mnt/disk/library/busybox:1.36"),
        ("alpine:3.20", "3.20-v2", "oci:/mnt/disk/library/alpine:3.20-v2"),
        ("ghcr.io/kedacore/keda:2.20.2", None, "oci:/mnt/disk/ghcr.io/kedacore/keda:2.20.2"),
        ("localhost:5000/team/app:1.0", None, "oci:/mnt/disk/localhost-5000/team/app:1.0"),
        ("Registry.Example.com/App:1", None, None),  # an upper-case path is no repository
    ],
)
def test_a_layout_tree_is_a_prefix_like_any_other(
    source: str, tag: str | None, target: str | None
) -> None:
    """``--target oci:DIR``: repository R is the layout DIR/R, the tag the image's tag."""
    if target is None:
        with pytest.raises(InvalidReference):
            target_reference(parse_reference(source), tag, LAYOUTS)
        return
    mapped = target_reference(parse_reference(source), tag, LAYOUTS)
    assert str(mapped) == target
    assert mapped.repository.is_layout and LAYOUTS.contains(mapped.repository)
    assert parse_reference(target) == mapped


def test_a_source_layout_is_read_where_the_export_wrote_it() -> None:
    """The same mapping: an entry is read from its target in the tree, by digest when pinned."""
    tagged = layout_source(parse_reference("alpine:3.20"), "3.20-v2", LAYOUTS)
    assert str(tagged) == "oci:/mnt/disk/library/alpine:3.20-v2"
    pinned = layout_source(parse_reference(f"busybox@{DIGEST}"), "1.32.0-v1", LAYOUTS)
    assert str(pinned) == f"oci:/mnt/disk/library/busybox:1.32.0-v1@{DIGEST}"
    assert pinned.identifier == DIGEST
