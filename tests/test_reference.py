"""Reference parsing by the distribution grammar, with Docker Hub normalisation."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from imagesync.errors import InvalidReference
from imagesync.reference import (
    DOCKER_HUB_ENDPOINT,
    Repository,
    is_valid_tag,
    parse_layout_tree,
    parse_reference,
    parse_registry_prefix,
    parse_repository,
)

DIGEST = "sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab"


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("busybox", "docker.io/library/busybox"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("docker.io/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox"),
        ("registry-1.docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("bitnami/postgres-exporter:0.8.0", "docker.io/bitnami/postgres-exporter:0.8.0"),
        ("ghcr.io/kedacore/keda:2.20.2", "ghcr.io/kedacore/keda:2.20.2"),
        ("localhost:5000/team/app:1.0", "localhost:5000/team/app:1.0"),
        ("localhost/app", "localhost/app"),
        ("[::1]:5000/app:v1", "[::1]:5000/app:v1"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
        ("a/b__c/d-e--f.g_h:Tag_1.0-x", "docker.io/a/b__c/d-e--f.g_h:Tag_1.0-x"),
        # A bare host:port is a Docker Hub image with a tag, as in the grammar.
        ("localhost:5000", "docker.io/library/localhost:5000"),
    ],
)
def test_parse_and_normalise(text: str, normalised: str) -> None:
    assert str(parse_reference(text)) == normalised


def test_parts_and_endpoints() -> None:
    hub = parse_reference("busybox:1.36")
    assert hub.repository == Repository("docker.io", "library/busybox")
    assert hub.tag == "1.36"
    assert hub.digest is None
    assert hub.written_name == "busybox"
    assert hub.repository.endpoint == DOCKER_HUB_ENDPOINT
    assert hub.identifier == "1.36"

    local = parse_reference(f"localhost:5000/team/app:1.0@{DIGEST}")
    assert local.registry == "localhost:5000"
    assert local.path == "team/app"
    assert local.repository.endpoint == "localhost:5000"
    # The digest is what a registry is asked for when there is one.
    assert local.identifier == DIGEST

    assert parse_reference("quay.io/org/app").identifier == "latest"


def test_written_name_does_not_take_part_in_equality() -> None:
    assert parse_reference("busybox:1") == parse_reference("docker.io/library/busybox:1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" busybox:1.36", "surrounding white space"),
        ("Busybox:1.36", "upper-case letters"),
        ("bitnami/Keycloak:9", "upper-case letters"),
        ("bitnami//keycloak:9", "empty path component"),
        ("bitnami/keycloak/", "empty path component"),
        ("ghcr.io/org/a..b:1", "'..'"),
        ("busybox@sha256:abc", "3 hex characters, sha256 needs 64"),
        (f"busybox@{DIGEST[:-1]}", "63 hex characters"),
        (f"busybox@{DIGEST.upper().replace('SHA256', 'sha256')}", "upper-case hex"),
        ("busybox@md5:0123", "not of the form"),
        ("busybox@", "no algorithm"),
        ("busybox:-bad", "tag '-bad' is not valid"),
        ("busybox:.bad", "is not valid"),
        ("busybox:" + "a" * 129, "is not valid"),
        ("busybox:t\u00e1g", "is not valid"),  # Go's \w is ASCII
        ("my-.host.io/app", "not a valid registry host"),
        ("a" * 256, "at most 255"),
        ("-busybox", "not valid"),
    ],
)
def test_invalid_references_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert message in caught.value.message
    assert caught.value.hint


def test_tag_grammar() -> None:
    assert is_valid_tag("1.32.0-v1")
    assert is_valid_tag("_x")
    assert is_valid_tag("a" * 128)
    assert not is_valid_tag("a" * 129)
    assert not is_valid_tag("-x")
    assert not is_valid_tag("1.0\n")
    assert not is_valid_tag("\u0661")  # an Arabic-Indic digit: \w in Python, not in Go


@pytest.mark.parametrize(
    ("text", "registry", "path"),
    [
        ("reg.io/ext", "reg.io", "ext"),
        ("reg.io/ext/", "reg.io", "ext"),
        ("reg.io", "reg.io", ""),
        ("localhost:5000", "localhost:5000", ""),
        ("localhost", "localhost", ""),
        (
            "europe-docker.pkg.dev/kyma-project/prod/external",
            "europe-docker.pkg.dev",
            "kyma-project/prod/external",
        ),
        ("docker.io/myorg", "docker.io", "myorg"),
    ],
)
def test_registry_prefix(text: str, registry: str, path: str) -> None:
    assert parse_registry_prefix(text) == Repository(registry, path)


def test_repository_contains() -> None:
    prefix = parse_registry_prefix("reg.io/ext")
    assert prefix.contains(parse_repository("reg.io/ext/library/busybox"))
    assert prefix.contains(prefix)
    assert not prefix.contains(parse_repository("reg.io/extra/busybox"))
    assert not prefix.contains(parse_repository("other.io/ext/busybox"))
    assert parse_registry_prefix("reg.io").contains(parse_repository("reg.io/anything"))


# -- properties ----------------------------------------------------------------------------

_ALNUM = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
_SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def path_components(draw: st.DrawFn) -> str:
    parts = [draw(_ALNUM)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(_SEPARATOR), draw(_ALNUM)]
    return "".join(parts)


_DOMAIN_COMPONENT = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_PORT = st.integers(1, 65535).map(lambda port: f":{port}")
_TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", fullmatch=True)
_DIGEST = st.from_regex(r"[a-f0-9]{64}", fullmatch=True).map(lambda hex_: f"sha256:{hex_}")
_DOCKER_HUB_NAMES = {
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
}


@st.composite
def domains(draw: st.DrawFn) -> str:
    """A host the grammar recognises as one: it has a '.', a port, or is localhost."""
    kind = draw(st.sampled_from(["dotted", "port", "localhost", "ipv6"]))
    if kind == "ipv6":
        return "[" + draw(st.sampled_from(["::1", "fe80::1", "2001:db8::7"])) + "]" + draw(_PORT)
    if kind == "localhost":
        return "localhost" + draw(st.sampled_from(["", ":5000"]))
    labels = draw(st.lists(_DOMAIN_COMPONENT, min_size=1 if kind == "port" else 2, max_size=4))
    host = ".".join(labels)
    return host + (draw(_PORT) if kind == "port" else draw(st.sampled_from(["", ":443"])))


@st.composite
def canonical_references(draw: st.DrawFn) -> str:
    domain = draw(domains())
    assume(domain.lower() not in _DOCKER_HUB_NAMES)  # those normalise to docker.io/library/…
    path = "/".join(draw(st.lists(path_components(), min_size=1, max_size=4)))
    assume(len(domain) + 1 + len(path) <= 255)
    text = f"{domain}/{path}"
    if draw(st.booleans()):
        text += ":" + draw(_TAG)
    if draw(st.booleans()):
        text += "@" + draw(_DIGEST)
    return text


@given(canonical_references())
def test_canonical_references_round_trip(text: str) -> None:
    reference = parse_reference(text)
    assert str(reference) == text
    assert parse_reference(str(reference)) == reference


@st.composite
def familiar_names(draw: st.DrawFn) -> tuple[str, str]:
    """A Docker Hub name as people write it, and its normalised form."""
    components = draw(st.lists(path_components(), min_size=1, max_size=3))
    # A first component with a '.' (or 'localhost') would be read as a registry host.
    assume(len(components) == 1 or ("." not in components[0] and components[0] != "localhost"))
    name = "/".join(components)
    normalised = f"docker.io/{name}" if len(components) > 1 else f"docker.io/library/{name}"
    suffix = ""
    if draw(st.booleans()):
        suffix += ":" + draw(_TAG)
    if draw(st.booleans()):
        suffix += "@" + draw(_DIGEST)
    return name + suffix, normalised + suffix


@given(familiar_names())
def test_familiar_names_normalise_to_docker_hub(case: tuple[str, str]) -> None:
    text, normalised = case
    reference = parse_reference(text)
    assert str(reference) == normalised
    assert reference.repository.endpoint == DOCKER_HUB_ENDPOINT
    # Normalising is idempotent.
    assert str(parse_reference(normalised)) == normalised


def test_layout_references_read_as_skopeo_writes_them(tmp_path) -> None:
    """``oci:/DIR[:TAG][@DIGEST]``: a layout directory; no ':' or '@' in its path, so no
    context is needed to tell it from its tag."""
    reference = parse_reference(f"oci:/mnt/disk/library/alpine:3.20@{DIGEST}")
    assert reference.repository == Repository("oci", "/mnt/disk/library/alpine")
    assert (reference.tag, reference.digest) == ("3.20", DIGEST)
    assert str(reference) == f"oci:/mnt/disk/library/alpine:3.20@{DIGEST}"
    assert reference.repository.is_layout
    # A registry called oci on a port stays a registry: layouts are absolute paths.
    assert parse_reference("oci:5000/team/app:1").registry == "oci:5000"
    for bad in ("oci:/mnt/../etc/app:1", "oci://host/app:1", "oci:/:1", "oci:/a/b:.bad"):
        with pytest.raises(InvalidReference):
            parse_reference(bad)


def test_a_layout_tree_is_an_absolute_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_registry_prefix("oci:mirror") == Repository("oci", f"{tmp_path}/mirror")
    assert parse_registry_prefix("oci:/mnt//disk/") == Repository("oci", "/mnt/disk")
    assert parse_layout_tree("disk") == parse_layout_tree(f"oci:{tmp_path}/disk")
    for bad in ("oci:", "oci:/", "oci:/mnt/a:b", "oci:/mnt/a@b"):
        with pytest.raises(InvalidReference):
            parse_registry_prefix(bad)
