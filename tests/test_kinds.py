"""The kind of a registry (stores/registry/kinds.py): what its host name gives, what the
registries config says, and what each kind means."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagesync.diagnostics import InvalidFile
from imagesync.stores.registry.kinds import Kind, capabilities_of, kind_for_host
from imagesync.stores.registry.registries import load_registries_config


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


def test_kind_in_the_registries_config_wins_over_the_host_name(tmp_path: Path) -> None:
    config = tmp_path / "registries.yaml"
    config.write_text(
        "registries:\n"
        "  harbor.example.com:\n    kind: harbor\n"
        "  123456789012.dkr.ecr.eu-west-1.amazonaws.com:\n    create_repositories: true\n"
        "  mirror.example.com:\n    kind: ghcr\n",
        encoding="utf-8",
    )
    loaded = load_registries_config(config)
    assert loaded.kind("harbor.example.com") is Kind.HARBOR
    assert loaded.kind("ghcr.io") is Kind.GHCR
    assert loaded.kind("registry.example.com") is Kind.DISTRIBUTION
    ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert loaded.kind(ecr) is Kind.ECR
    assert loaded.settings(ecr).create_repositories is True
    assert loaded.capabilities(ecr).creates_repositories is False
    assert loaded.capabilities("mirror.example.com").max_chunk_bytes == 4 * 1024 * 1024
    assert loaded.capabilities("europe-docker.pkg.dev").chunked_uploads is False
    assert loaded.capabilities("registry.example.com") == capabilities_of(Kind.DISTRIBUTION)


def test_an_unknown_kind_is_an_error_on_its_line_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "registries.yaml"
    config.write_text(
        "registries:\n  registry.example.com:\n    insecure: false\n    kind: harbour\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidFile) as raised:
        load_registries_config(config)
    (problem,) = raised.value.problems
    assert problem.line == 4
    assert "did you mean harbor?" in problem.message


def test_create_repositories_must_be_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "registries.yaml"
    config.write_text(
        "registries:\n  registry.example.com:\n    create_repositories: yes please\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidFile) as raised:
        load_registries_config(config)
    assert "create_repositories must be true or false" in raised.value.problems[0].message
