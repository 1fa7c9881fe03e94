"""Amazon ECR through the AWS API: the repositories imagesync creates, and its login tokens.

ECR creates no repository on push: a push to a missing one fails with ``404 NAME_UNKNOWN``
(registries.md item 1: plexsystems/sinker#55; create-on-push is still an open request,
aws/containers-roadmap#853). imagesync creates each one through ``CreateRepository``, as
dregsy does (``ensureTargetExists``), when the registries config allows it
(``create_repositories: true``); otherwise plan names the command that creates it. Its login is
a token from ``GetAuthorizationToken`` for the user ``AWS``, which expires after 12 h (registries.md
item 9, dregsy's README): it is asked for again before it runs out.

boto3 is an optional extra (``imagesync[aws]``), imported only when an ECR registry needs it.
Its endpoint, credentials and region come from the standard AWS chain (``AWS_ENDPOINT_URL_ECR``
is honoured as boto3 does). The registry id and region come from the host name
(``<account>.dkr.ecr.<region>.amazonaws.com``); a host that does not say (a registry made ECR by
``kind: ecr``) takes the region from ``AWS_REGION``/``AWS_DEFAULT_REGION`` and the caller's own
registry.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imagesync.errors import ConfigError, RegistryError
from imagesync.redact import excerpt, secrets
from imagesync.stores.registry.auth import Credential

_HOST = re.compile(r"(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
# The user a GetAuthorizationToken token logs in as.
TOKEN_USER = "AWS"
# A token is asked for again this long before it expires.
RENEW_BEFORE = 300.0
# A token whose expiry is missing or already past (a clock that is off, a fake) is used for
# this long, regsync's default credExpire.
FALLBACK_LIFETIME = 3600.0
_INSTALL_HINT = "install the AWS extra: pip install 'imagesync[aws]'"


@dataclass(frozen=True)
class EcrRegistry:
    """An ECR registry as the AWS API names it: its account (None: the caller's) and region
    (None: boto3's default)."""

    host: str
    registry_id: str | None
    region: str | None

    @classmethod
    def of(cls, host: str) -> EcrRegistry:
        name = host.lower()
        name = name.rsplit(":", 1)[0] if not name.startswith("[") else name
        match = _HOST.fullmatch(name)
        if match:
            return cls(host, match[1], match[2])
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
        return cls(host, None, region)

    def create_command(self, name: str) -> str:
        """The AWS CLI command that creates repository ``name`` here."""
        command = f"aws ecr create-repository --repository-name {name}"
        if self.registry_id:
            command += f" --registry-id {self.registry_id}"
        return command + (f" --region {self.region}" if self.region else "")

    def ids(self) -> dict[str, Any]:
        return {"registryId": self.registry_id} if self.registry_id else {}


def boto3_available() -> bool:
    """Whether the AWS extra is installed (without importing it)."""
    return importlib.util.find_spec("boto3") is not None


_clients: dict[str | None, Any] = {}
_clients_lock = threading.Lock()


def _client(registry: EcrRegistry) -> Any:
    """A boto3 ECR client for the registry's region, one per region and process."""
    with _clients_lock:
        if registry.region in _clients:
            return _clients[registry.region]
        try:
            import boto3
            from botocore.exceptions import BotoCoreError
        except ImportError:
            raise ConfigError(
                f"{registry.host} is an Amazon ECR registry: imagesync talks to its API with "
                "boto3, which is not installed",
                _INSTALL_HINT,
            ) from None
        try:
            client = boto3.client("ecr", region_name=registry.region)
        except BotoCoreError as error:  # NoRegionError and kin: a setup problem
            raise ConfigError(
                f"cannot reach the AWS API for {registry.host}: {excerpt(str(error))}",
                "set AWS_REGION (or AWS_DEFAULT_REGION) and AWS credentials",
            ) from None
        _clients[registry.region] = client
        return client


def _aws_errors() -> tuple[type[Exception], ...]:
    """What a boto3 call raises: the service's answer (ClientError, with its code) or
    botocore's own failures (no credentials, no endpoint). Asked only once a call failed, so
    boto3 is loaded by then."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _failure(what: str, error: Exception) -> RegistryError:
    """A boto3 error as a RegistryError: the AWS error code and message, or botocore's words."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        detail = response.get("Error") or {}
        code = str(detail.get("Code") or "")
        words = f"{code}: {detail.get('Message') or ''}".strip(": ")
        return RegistryError(
            f"{what}: {excerpt(words, 300)}",
            "check the AWS credentials' rights (ecr:CreateRepository, "
            "ecr:GetAuthorizationToken) and region",
            code=code or None,
        )
    return RegistryError(
        f"{what}: {excerpt(str(error), 300)}", "check the AWS credentials, region and endpoint"
    )


def create_repository(registry: EcrRegistry, name: str) -> bool:
    """Create repository ``name``; True when created now, False when it existed already."""
    client = _client(registry)
    try:
        client.create_repository(repositoryName=name, **registry.ids())
    except _aws_errors() as error:
        failure = _failure(f"cannot create repository {name} in {registry.host}", error)
        if failure.code == "RepositoryAlreadyExistsException":
            return False
        raise failure from None
    return True


def login(host: str) -> Credential:
    """A login for ``host`` from GetAuthorizationToken, renewed (``expires_at``) before it
    runs out."""
    registry = EcrRegistry.of(host)
    client = _client(registry)
    ids = {"registryIds": [registry.registry_id]} if registry.registry_id else {}
    try:
        answer = client.get_authorization_token(**ids)
        data = answer["authorizationData"][0]
        token = str(data["authorizationToken"])
    except (KeyError, IndexError, TypeError):
        raise RegistryError(f"the AWS API gave no authorization token for {host}") from None
    except _aws_errors() as error:
        raise _failure(f"cannot get an ECR login token for {host}", error) from None
    secrets.add(token)
    try:
        user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except ValueError:
        user, password = "", ""
    if user != TOKEN_USER or not password:
        raise RegistryError(f"the AWS API gave an authorization token for {host} that is no login")
    lifetime = _lifetime(data.get("expiresAt"))
    return Credential(
        username=user,
        password=password,
        origin=f"an ECR token from GetAuthorizationToken for {host}",
        expires_at=time.monotonic() + lifetime - RENEW_BEFORE,
    )


def _lifetime(expires_at: Any) -> float:
    """Seconds the token lives: to its ``expiresAt``, or FALLBACK_LIFETIME when that is
    missing or too near to be true."""
    if isinstance(expires_at, datetime):
        moment = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        left = (moment - datetime.now(UTC)).total_seconds()
        if left > 2 * RENEW_BEFORE:
            return left
    return FALLBACK_LIFETIME
