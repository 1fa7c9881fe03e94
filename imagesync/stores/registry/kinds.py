"""What kind of registry a host is: the one place that says what each kind means.

Design §16: imagesync learns from answers first (a refused mount, a missing referrers API, a
refused tag list each have a right next step whatever answered). A kind covers only what no
answer can tell: ECR creates no repository on push, GHCR caps a chunk at 4 MiB, GAR is better
served monolithic. Such facts are the fields of :class:`Capabilities`, one value per kind
(:data:`CAPABILITIES`); the kind of a registry is its registries config's ``kind:``, else what
its host name gives (:func:`kind_for_host`), read through
``RegistriesConfig.capabilities(host)``. Code that acts on a kind asks for a capability,
never for the kind's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """The registry implementations whose differences imagesync may have to know."""

    ECR = "ecr"
    GAR = "gar"
    GHCR = "ghcr"
    DOCKERHUB = "dockerhub"
    HARBOR = "harbor"
    QUAY = "quay"
    ACR = "acr"
    DISTRIBUTION = "distribution"


# Host names (lower case, without a port) that give a kind away; first match wins. Harbor runs
# under any name its operator picks: nothing in a host name says Harbor.
_BY_HOST: tuple[tuple[re.Pattern[str], Kind], ...] = (
    (re.compile(r"[^.]+\.dkr\.ecr\.[^.]+\.amazonaws\.com(\.cn)?"), Kind.ECR),
    (re.compile(r"[a-z0-9-]+-docker\.pkg\.dev|([a-z]+\.)?gcr\.io"), Kind.GAR),
    (re.compile(r"ghcr\.io"), Kind.GHCR),
    (re.compile(r"(registry-1\.|index\.)?docker\.io"), Kind.DOCKERHUB),
    (re.compile(r"quay\.io"), Kind.QUAY),
    (re.compile(r"[^.]+\.azurecr\.io"), Kind.ACR),
)


def kind_for_host(host: str) -> Kind:
    """The kind a registry's host name (``host[:port]``) suggests; DISTRIBUTION when it says
    nothing (the reference registry, and what other registries answer like)."""
    name = host.lower()
    if not name.startswith("["):  # an IPv6 address names no kind
        name = name.rsplit(":", 1)[0]
    for pattern, kind in _BY_HOST:
        if pattern.fullmatch(name):
            return kind
    return Kind.DISTRIBUTION


@dataclass(frozen=True)
class Capabilities:
    """What a kind of registry does that its answers cannot tell in time.

    ``creates_repositories``: a push to a repository that does not exist creates it (ECR's
    does not: ``404 NAME_UNKNOWN``, aws/containers-roadmap#853). ``chunked_uploads``: an
    upload may go up in ``PATCH`` chunks (GAR's documentation said it may not,
    dotnet/sdk-container-builds#287). ``max_chunk_bytes``: the largest chunk it takes (GHCR:
    4 MiB, oras-project/rust-oci-client#35); None when it states none. ``aws_ecr``: its
    repositories are created, and its login tokens issued, through the AWS ECR API
    (``CreateRepository``, ``GetAuthorizationToken``; dregsy's ``ensureTargetExists``).
    ``content_settings``: the registry's settings that decide whether it takes some content,
    by the refusal that says so (an error code, or a status as text): used only to word the
    message of a refused write, which fails that image alone.
    """

    creates_repositories: bool = True
    chunked_uploads: bool = True
    max_chunk_bytes: int | None = None
    aws_ecr: bool = False
    content_settings: tuple[tuple[str, str], ...] = ()

    def setting_for(self, status: int | None, code: str | None) -> str | None:
        """The setting a refusal (``status``, error ``code``) points at, if one is known."""
        for refusal, setting in self.content_settings:
            if refusal in (code, str(status)):
                return setting
        return None


# Quay takes OCI artifacts only with FEATURE_GENERAL_OCI_SUPPORT and the artifact's types in
# ALLOWED_OCI_ARTIFACT_TYPES (deckhouse/deckhouse#10672; oras-project/oras#738: 415 or 400
# MANIFEST_INVALID), and nested repository names only with FEATURE_EXTENDED_REPOSITORY_NAMES
# (quay/quay#814; containers/skopeo#1180: 400).
_QUAY_ARTIFACTS = (
    "Quay takes OCI artifacts only when its config enables FEATURE_GENERAL_OCI_SUPPORT and "
    "lists the artifact's types in ALLOWED_OCI_ARTIFACT_TYPES: ask its administrator, or leave "
    "the artifact out of the images file"
)
_QUAY_NAMES = (
    "Quay takes repository names of more than two components only when its config enables "
    "FEATURE_EXTENDED_REPOSITORY_NAMES: ask its administrator, or choose a shorter target"
)


CAPABILITIES: dict[Kind, Capabilities] = {
    Kind.ECR: Capabilities(creates_repositories=False, aws_ecr=True),
    Kind.GAR: Capabilities(chunked_uploads=False),
    Kind.GHCR: Capabilities(max_chunk_bytes=4 * 1024 * 1024),
    Kind.QUAY: Capabilities(
        content_settings=(
            ("415", _QUAY_ARTIFACTS),
            ("MANIFEST_INVALID", _QUAY_ARTIFACTS),
            ("NAME_INVALID", _QUAY_NAMES),
        )
    ),
}


def capabilities_of(kind: Kind) -> Capabilities:
    """What ``kind`` does; the reference registry's behaviour where nothing is known."""
    return CAPABILITIES.get(kind, Capabilities())
