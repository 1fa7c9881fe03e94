"""The kind a registry's host name gives (stores/registry/kinds.py)."""

from __future__ import annotations

import pytest

from imagesync.stores.registry.kinds import Kind, kind_for_host


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", Kind.ECR),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", Kind.ECR),
        ("europe-west1-docker.pkg.dev", Kind.GAR),
        ("gcr.io", Kind.GAR),
        ("eu.gcr.io", Kind.GAR),
        ("ghcr.io", Kind.GHCR),
        ("docker.io", Kind.DOCKERHUB),
        ("registry-1.docker.io", Kind.DOCKERHUB),
        ("quay.io", Kind.QUAY),
        ("myregistry.azurecr.io", Kind.ACR),
        ("MyRegistry.AzureCR.io", Kind.ACR),
        ("ghcr.io:443", Kind.GHCR),
        ("harbor.example.com", Kind.DISTRIBUTION),
        ("registry.internal", Kind.DISTRIBUTION),
        ("localhost:5000", Kind.DISTRIBUTION),
        ("[::1]:5000", Kind.DISTRIBUTION),
        ("127.0.0.1", Kind.DISTRIBUTION),
    ],
)
def test_a_host_name_gives_its_kind(host: str, kind: Kind) -> None:
    assert kind_for_host(host) is kind


@pytest.mark.parametrize(
    "host",
    [
        "ghcr.io.example.com",  # a name that only contains a known one
        "notghcr.io",
        "evil-docker.pkg.dev.example.com",
        "docker.io.attacker.net",
        "azurecr.io",
        "dkr.ecr.eu-west-1.amazonaws.com",
    ],
)
def test_lookalike_hosts_are_plain_registries(host: str) -> None:
    assert kind_for_host(host) is Kind.DISTRIBUTION
