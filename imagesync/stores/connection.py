"""Builds a run's stores from what the user gave: the target, a source layout, the registries
config, credentials, retries.

The one place that decides which kind of store each side is: a layout tree (``oci:DIR``) or
registries. It is also the one door to the network stack: :func:`open_client` loads the
registry client, the transport and through them requests, urllib3 and oras when a command
first talks to a registry. What comes before that (options, ``--help``, ``validate``,
``show``) loads none of them, and a run between two layouts never does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagesync.errors import ConfigError
from imagesync.reference import Repository
from imagesync.retry import DEFAULT_ATTEMPTS, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    from imagesync.stores.layout.store import LayoutStore
    from imagesync.stores.registry.auth import Credential
    from imagesync.stores.registry.client import RegistryClient
    from imagesync.stores.registry.registries import RegistriesConfig
    from imagesync.stores.store import Store, Stores

# Seconds before the first retry (doubling per attempt); tests and impatient users shorten it.
BASE_DELAY_ENV = "IMAGESYNC_RETRY_BASE_DELAY"


@dataclass(frozen=True)
class ConnectionOptions:
    """Everything about how to reach registries; secrets stay inside CredentialStore."""

    registries_config: Path | None = None
    access_token: str | None = None
    key_file: Path | None = None
    retries: int = DEFAULT_ATTEMPTS
    timeout: float = 60.0

    def __repr__(self) -> str:
        # Never show the token, even in a debugger or a traceback's locals.
        return f"ConnectionOptions(registries_config={self.registries_config!r})"


def open_stores(
    options: ConnectionOptions,
    target: Repository,
    source_layout: Repository | None = None,
    registries_config: RegistriesConfig | None = None,
) -> Stores:
    """The sources and the target of a run, and the run's context beside them. ``target`` is
    a registry prefix or a layout tree; sources are read from their registries (through one
    client with the target's, so they share connections and what they learn), or all from
    ``source_layout``. ``registries_config``: the config already read from ``options``, else
    it is read here."""
    from imagesync.stores.run import RunContext
    from imagesync.stores.store import Stores

    client: RegistryClient | None = None

    def registries(*, pull: bool) -> Store:
        from imagesync.stores.registry.store import RegistryStore

        nonlocal client
        if client is None:
            endpoint = None if target.is_layout else target.endpoint
            client = open_client(options, endpoint, registries_config)
        return RegistryStore(client, pull=pull)

    sources = (
        _layout_store(source_layout, "--source-layout", must_exist=True)
        if source_layout is not None
        else registries(pull=True)
    )
    if target.is_layout:
        layout = _layout_store(target, "--target", must_exist=False)
        tree = layout.tree

        def same_tree(repository: Repository, holder: Repository) -> bool:
            return tree.contains(repository) and tree.contains(holder)

        # The client (when sources are registries) is the run's registry side: what it has
        # learnt from answers, and its stop.
        run = RunContext(same_tree, registries=client)
        return Stores(sources, layout, run)
    target_store = registries(pull=False)
    assert client is not None
    run = RunContext(_same_registry, client.holders, registries=client, target_is_registry=True)
    return Stores(sources, target_store, run)


def _same_registry(repository: Repository, holder: Repository) -> bool:
    """A registry mounts from its own repositories only."""
    return holder.endpoint == repository.endpoint


def _layout_store(tree: Repository, option: str, *, must_exist: bool) -> LayoutStore:
    from imagesync.stores.layout.store import LayoutStore
    from imagesync.stores.layout.tree import LayoutTree

    if must_exist and not Path(tree.path).is_dir():
        raise ConfigError(
            f"{option} {tree.path}: no such directory",
            "give the directory that imagesync --target oci:DIR wrote (the disk, mounted)",
        )
    return LayoutStore(LayoutTree(tree))


def retry_policy(options: ConnectionOptions) -> RetryPolicy:
    """How often, and after which waits, a request or a broken transfer is tried again."""
    return RetryPolicy(attempts=max(1, options.retries), base_delay=retry_base_delay())


def open_client(
    options: ConnectionOptions,
    target_registry: str | None,
    registries_config: RegistriesConfig | None = None,
) -> RegistryClient:
    """A client whose target credentials (token or key file) apply to ``target_registry`` only
    (None: the target is no registry). ``registries_config``: the config already read from
    ``options``, else it is read here."""
    from imagesync.stores.registry.auth import CredentialStore
    from imagesync.stores.registry.client import RegistryClient
    from imagesync.stores.registry.registries import load_registries_config
    from imagesync.stores.registry.transport import Transport

    if registries_config is None:
        registries_config = load_registries_config(options.registries_config)
    credentials = CredentialStore(
        target_registry=target_registry,
        access_token=options.access_token,
        key_file=options.key_file,
        fallback=_aws_login(registries_config),
    )
    transport = Transport(
        registries_config,
        credentials,
        retry_policy(options),
        timeout=options.timeout,
    )
    return RegistryClient(transport)


def _aws_login(config: RegistriesConfig) -> Callable[[str], Credential | None]:
    """Credentials for a registry no docker config covers: for an ECR registry, a token from
    the AWS API when boto3 is installed (imported then only); anonymous otherwise."""

    def login(registry: str) -> Credential | None:
        if not config.capabilities(registry).aws_ecr:
            return None
        from imagesync.stores.registry import ecr

        return ecr.login(registry) if ecr.boto3_available() else None

    return login


def retry_base_delay() -> float:
    """The backoff's first delay: ``IMAGESYNC_RETRY_BASE_DELAY`` seconds, else the policy's."""
    text = os.environ.get(BASE_DELAY_ENV, "").strip()
    if not text:
        return RetryPolicy.base_delay
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 60:
        raise ConfigError(
            f"{BASE_DELAY_ENV}={text!r} is not a number of seconds",
            f"set it to a number from 0 to 60, or unset it for the default "
            f"{RetryPolicy.base_delay} s",
        )
    return value
