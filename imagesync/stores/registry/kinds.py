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
    """

    creates_repositories: bool = True
    chunked_uploads: bool = True
    max_chunk_bytes: int | None = None
    aws_ecr: bool = False


CAPABILITIES: dict[Kind, Capabilities] = {
    Kind.ECR: Capabilities(creates_repositories=False, aws_ecr=True),
    Kind.GAR: Capabilities(chunked_uploads=False),
    Kind.GHCR: Capabilities(max_chunk_bytes=4 * 1024 * 1024),
}


def capabilities_of(kind: Kind) -> Capabilities:
    """What ``kind`` does; the reference registry's behaviour where nothing is known."""
    return CAPABILITIES.get(kind, Capabilities())
