"""Fixtures: real registries on loopback, started per test and stopped after it.

Starting one takes ~50 ms, so every test that writes gets fresh, empty registries.
``shared_registry`` (one per session and xdist worker) is for tests that only read what they
pushed themselves under their own repository names. Tests that use a registry fixture get the
``registry`` marker (``-m "not registry"`` runs the rest), and when one fails its registries'
log tails are added to the report.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.registry import RegistryServer
from tests.harness.tokenserver import TokenServer

REGISTRY_FIXTURES = frozenset(
    {
        "registry",
        "source_registry",
        "target_registry",
        "basic_auth_registry",
        "tls_registry",
        "token_registry",
        "registry_factory",
        "shared_registry",
    }
)
_SERVERS = pytest.StashKey[list[RegistryServer]]()

RegistryFactory = Callable[..., RegistryServer]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REGISTRY_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.registry)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when in ("setup", "call"):
        for server in item.stash.get(_SERVERS, []):
            report.sections.append((f"registry log {server.host}", server.log_tail()))
    return report


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
        "SYNCER_TARGET_REPO_PREFIX",
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
def registry_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryFactory]:
    """``registry_factory(users=..., tls=..., auth=..., name=...)`` starts one more registry
    (options as :class:`RegistryServer`); all are stopped when the test ends."""
    started: list[RegistryServer] = []

    # Big-blob tests (marked slow) store on disk, not in memory (see RegistryServer tmpfs).
    options_default = {"tmpfs": request.node.get_closest_marker("slow") is None}

    def start(name: str = "registry", **options: Any) -> RegistryServer:
        server = RegistryServer(tmp_path_factory.mktemp(name), **{**options_default, **options})
        started.append(server)
        request.node.stash.setdefault(_SERVERS, []).append(server)
        return server

    yield start
    for server in reversed(started):
        server.close()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> RegistryServer:
    """A fresh, empty registry: plain HTTP, no auth."""
    return registry_factory("registry")


@pytest.fixture
def source_registry(registry_factory: RegistryFactory) -> RegistryServer:
    return registry_factory("source")


@pytest.fixture
def target_registry(registry_factory: RegistryFactory) -> RegistryServer:
    return registry_factory("target")


@pytest.fixture
def basic_auth_registry(registry_factory: RegistryFactory) -> RegistryServer:
    """htpasswd basic auth; ``.credentials`` is (user, password). The password is random per
    test, so a leak check can search output for it."""
    return registry_factory("basic", users={"imagesync": f"pw-{secrets.token_hex(12)}"})


@pytest.fixture
def tls_registry(registry_factory: RegistryFactory) -> RegistryServer:
    """HTTPS with a throw-away CA: ``.ca_file`` (PEM) and ``.cert_dir`` (holds only ca.crt)."""
    return registry_factory("tls", tls=True)


TOKEN_USERS = {"pusher": "pusher-password", "reader": "reader-password"}


def default_token_policy(user: str | None, repository: str) -> set[str]:
    """``pusher`` may pull and push everywhere, ``reader`` only pull, anonymous nothing."""
    return {"pusher": {"pull", "push"}, "reader": {"pull"}}.get(user or "", set())


@pytest.fixture
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """A token server with :data:`TOKEN_USERS` and :func:`default_token_policy`."""
    # An int lifetime: expires_in must be a JSON integer, skopeo rejects 300.0.
    server = TokenServer(
        tmp_path_factory.mktemp("token"), dict(TOKEN_USERS), default_token_policy, lifetime=300
    )
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def token_registry(registry_factory: RegistryFactory, token_server: TokenServer) -> RegistryServer:
    """A registry with ``auth: token`` trusting ``token_server``. It knows no users itself:
    pass ``credentials=("pusher", token_server.users["pusher"])`` to the helpers."""
    return registry_factory("token", auth=token_server.registry_auth())


@pytest.fixture(scope="session")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """One registry for the whole session (per xdist worker): only for tests that read, under
    repository names no other test uses."""
    with RegistryServer(tmp_path_factory.mktemp("shared")) as server:
        yield server
