"""Builds a run's stores from what the user gave: config, credentials, retries.

The one door to the network stack: :func:`open_stores` (through :func:`open_client`) loads the
registry client, the transport and through them requests, urllib3 and oras when a command
first talks to a registry. What comes before that (options, ``--help``, ``validate``,
``show``) loads none of them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagesync.errors import ConfigError
from imagesync.retry import DEFAULT_ATTEMPTS, RetryPolicy
from imagesync.stores.registry.registries import load_registries_config

if TYPE_CHECKING:
    from imagesync.stores.registry.client import RegistryClient
    from imagesync.stores.store import Stores

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


def open_stores(options: ConnectionOptions, target_registry: str) -> Stores:
    """The sources and the target of a run: registries, seen through one client."""
    from imagesync.stores.registry.store import RegistryStore
    from imagesync.stores.store import Stores

    client = open_client(options, target_registry)
    return Stores(RegistryStore.sources(client), RegistryStore.target(client))


def retry_policy(options: ConnectionOptions) -> RetryPolicy:
    """How often, and after which waits, a request or a broken transfer is tried again."""
    return RetryPolicy(attempts=max(1, options.retries), base_delay=retry_base_delay())


def open_client(options: ConnectionOptions, target_registry: str) -> RegistryClient:
    """A client whose target credentials (token or key file) apply to ``target_registry`` only."""
    from imagesync.stores.registry.auth import CredentialStore
    from imagesync.stores.registry.client import RegistryClient
    from imagesync.stores.registry.transport import Transport

    credentials = CredentialStore(
        target_registry=target_registry,
        access_token=options.access_token,
        key_file=options.key_file,
    )
    transport = Transport(
        load_registries_config(options.registries_config),
        credentials,
        retry_policy(options),
        timeout=options.timeout,
    )
    return RegistryClient(transport)


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
