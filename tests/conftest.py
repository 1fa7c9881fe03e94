"""Fixtures: real registries on loopback, started per test and stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.registry import RegistryServer


@pytest.fixture(autouse=True)
def _isolated_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's own credentials; tests that need some write their own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    for name in (
        "SYNCER_TARGET_REPO",
        "SYNCER_ACCESS_TOKEN",
        "SYNCER_TARGET_REPO_AUTH_KEY",
        "SYNCER_IMAGES_FILE",
        "SYNCER_DRY_RUN",
        "SYNCER_DEBUG",
        "GITHUB_STEP_SUMMARY",
        "SYNCER_REGISTRIES_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "registry") as server:
        yield server


@pytest.fixture
def source_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "source") as server:
        yield server


@pytest.fixture
def target_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "target") as server:
        yield server
