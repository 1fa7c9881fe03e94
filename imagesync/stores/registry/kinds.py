"""What kind of registry a host is: the one place that says what each kind means.

Design §16: imagesync learns from answers first (a refused mount, a missing referrers API, a
refused tag list each have a right next step whatever answered). A kind covers only what no
answer can tell: ECR creates no repository on push, GHCR caps a chunk at 4 MiB, GAR is better
served monolithic. Such facts belong here, as fields of a per-kind capabilities value, added
with the code that first acts on them; nothing does yet, so this module holds the kinds and
the default a host name gives (the registries config will be able to override it).
"""

from __future__ import annotations

import re
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
