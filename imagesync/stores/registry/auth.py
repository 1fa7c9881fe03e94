"""Credentials and tokens: who we are at each registry.

Credentials, first match wins (design.md §7): ``--access-token`` (a bearer token, target only),
``-t KEYFILE`` (a GCP JSON key, sent as basic auth user ``_json_key``, target only), docker
config files (``auths``, ``credHelpers``, ``credsStore``), then anonymous.

Tokens from the bearer dance are cached per registry and scope: a token for one repository
says nothing about another, and a sync touches many.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oras.auth.utils import get_basic_auth, parse_auth_header

from imagesync.content.documents import json_object
from imagesync.errors import ConfigError, shorten
from imagesync.inputfile import InputMissing, UnreadableInput, read_input
from imagesync.redact import secrets
from imagesync.reference import DOCKER_HUB, DOCKER_HUB_ENDPOINT

JSON_KEY_USER = "_json_key"
# Docker's convention for an identity (refresh) token stored in place of a password.
IDENTITY_TOKEN_USER = "<token>"
_DOCKER_HUB_KEYS = {"https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB_ENDPOINT}
# Renew a little before expiry so a token does not run out between check and use.
_EXPIRY_MARGIN = 10.0
# Docker configs hold a few logins; key files a few KiB of JSON.
MAX_DOCKER_CONFIG_BYTES = 4 * 1024 * 1024
MAX_KEY_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Credential:
    """One identity at one registry. Exactly one of the three forms is set."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    bearer: str | None = None
    origin: str = "anonymous"
    # time.monotonic() after which it is asked for again (a token that expires: ECR's); None:
    # it does not expire.
    expires_at: float | None = None

    def __post_init__(self) -> None:
        for secret in (self.password, self.identity_token, self.bearer):
            secrets.add(secret)
        if self.username and self.password:
            secrets.add(basic_token(self.username, self.password))

    def __repr__(self) -> str:
        return f"Credential(origin={self.origin!r})"

    @property
    def fresh(self) -> bool:
        return self.expires_at is None or time.monotonic() < self.expires_at

    @property
    def is_anonymous(self) -> bool:
        return not (self.password or self.identity_token or self.bearer)


ANONYMOUS = Credential()


def basic_token(username: str, password: str) -> str:
    """``user:password`` for a Basic Authorization header (oras-py's encoding of it)."""
    token: str = get_basic_auth(username, password)
    return token


def _normalise_host(key: str) -> str:
    if key in _DOCKER_HUB_KEYS:
        return DOCKER_HUB
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return DOCKER_HUB if host in _DOCKER_HUB_KEYS else host


def docker_config_paths() -> list[Path]:
    """Where docker, podman and skopeo keep credentials, in the order we read them."""
    paths: list[Path] = []
    if os.environ.get("DOCKER_CONFIG"):
        paths.append(Path(os.environ["DOCKER_CONFIG"]) / "config.json")
    else:
        paths.append(Path.home() / ".docker" / "config.json")
    if os.environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    return paths


# Credentials for a registry that no docker config covers (an ECR token from the AWS API);
# None: anonymous.
Fallback = Callable[[str], "Credential | None"]


class CredentialStore:
    """Answers "which credential for this registry" once per registry, then remembers (a
    credential that expires until it does). ``fallback``: where credentials come from for a
    registry that no docker config covers."""

    def __init__(
        self,
        target_registry: str | None = None,
        access_token: str | None = None,
        key_file: str | Path | None = None,
        config_paths: Sequence[Path] | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        self._target = target_registry
        self._fallback = fallback
        self._target_credential: Credential | None = None
        if access_token:
            self._target_credential = Credential(bearer=access_token, origin="--access-token")
        elif key_file:
            self._target_credential = _json_key_credential(Path(key_file))
        self._configs = [_read_config(p) for p in (config_paths or docker_config_paths())]
        self._cache: dict[str, Credential] = {}
        self._lock = threading.Lock()

    def for_registry(self, registry: str) -> Credential:
        with self._lock:
            known = self._cache.get(registry)
            if known is None or not known.fresh:
                self._cache[registry] = self._lookup(registry)
            return self._cache[registry]

    def _lookup(self, registry: str) -> Credential:
        if self._target_credential is not None and registry == self._target:
            return self._target_credential
        wanted = _normalise_host(registry)
        for config in self._configs:
            credential = _from_config(config, wanted)
            if credential is not None:
                return credential
        if self._fallback is not None:
            return self._fallback(registry) or ANONYMOUS
        return ANONYMOUS


def _json_key_credential(path: Path) -> Credential:
    try:
        content = read_input(path, MAX_KEY_FILE_BYTES).decode("utf-8")
    except UnreadableInput as error:
        raise ConfigError(
            f"cannot read the target auth key file {path}: {error.reason}",
            "check -t/--target-repo-auth-key or SYNCER_TARGET_REPO_AUTH_KEY",
        ) from None
    except UnicodeDecodeError:
        content = ""
    try:
        json.loads(content)
    except (ValueError, RecursionError):
        raise ConfigError(
            f"the target auth key file {path} is not JSON",
            "pass a service account key file as downloaded (JSON)",
        ) from None
    return Credential(username=JSON_KEY_USER, password=content, origin=f"key file {path}")


@dataclass(frozen=True)
class _DockerConfig:
    """What one docker config file says, checked: credentials by registry, in file order."""

    auths: tuple[tuple[str, Credential | None], ...] = ()
    helpers: tuple[tuple[str, str], ...] = ()
    store: str | None = None


def _read_config(path: Path) -> _DockerConfig:
    """Read and check a docker config, as docker does when it loads one: every value of the
    wrong type is an error naming the file and the key (never the value: it may be a secret)."""
    try:
        data = read_input(path, MAX_DOCKER_CONFIG_BYTES)
    except InputMissing:
        return _DockerConfig()
    except UnreadableInput as error:
        raise ConfigError(
            f"cannot read docker config {path}: {error.reason}", "fix or remove the file"
        ) from None
    document = json_object(data, f"docker config {path}", ConfigError)
    checker = _ConfigChecker(path)
    auths = checker.mapping(document, "auths")
    helpers = checker.mapping(document, "credHelpers")
    store = checker.text(document, "credsStore", "credsStore")
    return _DockerConfig(
        auths=tuple(
            (_normalise_host(key), checker.credential(key, entry)) for key, entry in auths.items()
        ),
        helpers=tuple(
            (_normalise_host(key), checker.text(helpers, key, f"credHelpers.{_key(key)}") or "")
            for key in helpers
        ),
        store=store or None,
    )


class _ConfigChecker:
    def __init__(self, path: Path) -> None:
        self.origin = f"docker config {path}"

    def fail(self, where: str, must: str) -> ConfigError:
        return ConfigError(f"{self.origin}: {where} {must}", "fix or remove the file")

    def mapping(self, document: dict[str, Any], key: str) -> dict[str, Any]:
        value = document.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a JSON object (registry host → settings)")
        return value

    def text(self, document: dict[str, Any], key: str, where: str) -> str | None:
        value = document.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(where, "must be text")
        return value

    def credential(self, key: str, entry: Any) -> Credential | None:
        where = f"auths.{_key(key)}"
        if not isinstance(entry, dict):
            raise self.fail(where, "must be a JSON object")
        identity = self.text(entry, "identitytoken", f"{where}.identitytoken")
        encoded = self.text(entry, "auth", f"{where}.auth")
        username = self.text(entry, "username", f"{where}.username")
        password = self.text(entry, "password", f"{where}.password")
        if identity:
            return Credential(identity_token=identity, origin=self.origin)
        if encoded:
            try:
                decoded = base64.b64decode("".join(encoded.split()), validate=True).decode("utf-8")
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                decoded = ""
            if ":" not in decoded:
                raise self.fail(
                    f"{where}.auth", "is not base64 of user:password (as docker login writes it)"
                )
            user, _, secret = decoded.partition(":")
            return _user_credential(user, secret, self.origin)
        if username and password:
            return Credential(username=username, password=password, origin=self.origin)
        return None


def _key(key: str) -> str:
    """A key of a docker config in a message: quoted, and short."""
    return json.dumps(shorten(key, 100), ensure_ascii=False)


def _from_config(config: _DockerConfig, registry: str) -> Credential | None:
    for host, credential in config.auths:
        if host == registry and credential is not None:
            return credential
    helper = next((h for host, h in config.helpers if host == registry), None)
    helper = helper or config.store
    if helper:
        return _from_helper(helper, registry)
    return None


def _user_credential(username: str, secret: str, origin: str) -> Credential:
    if username == IDENTITY_TOKEN_USER:
        return Credential(identity_token=secret, origin=origin)
    return Credential(username=username, password=secret, origin=origin)


def _from_helper(helper: str, registry: str) -> Credential | None:
    binary = f"docker-credential-{helper}"
    server = "https://index.docker.io/v1/" if registry == DOCKER_HUB else registry
    try:
        result = subprocess.run(
            [binary, "get"], input=server.encode(), capture_output=True, timeout=30, check=False
        )
    except FileNotFoundError:
        raise ConfigError(
            f"credential helper {binary} is named in the docker config but not on PATH",
            f"install {binary} or remove it from the docker config",
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"credential helper {binary} did not answer within 30 s") from None
    if result.returncode != 0:
        # Helpers exit non-zero for "no credentials for this server": that means anonymous.
        return None
    try:
        answer = json.loads(result.stdout)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"credential helper {binary} gave an answer that is not JSON") from None
    return _user_credential(username, secret, f"credential helper {binary}")


@dataclass(frozen=True)
class Challenge:
    """What a registry asked for in WWW-Authenticate."""

    scheme: str  # "bearer" or "basic"
    realm: str = ""
    service: str = ""

    @classmethod
    def parse(cls, header: str) -> Challenge | None:
        scheme = header.strip().split(" ", 1)[0].lower()
        if scheme == "basic":
            return cls("basic")
        if scheme != "bearer":
            return None
        parsed = parse_auth_header(header)
        return cls("bearer", parsed.realm or "", parsed.service or "")


@dataclass
class Token:
    value: str
    expires_at: float

    @property
    def fresh(self) -> bool:
        return time.monotonic() < self.expires_at - _EXPIRY_MARGIN


def token_from_response(body: dict[str, Any]) -> Token:
    value = body.get("token") or body.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("the token response holds no token")
    secrets.add(value)
    try:
        lifetime = float(body.get("expires_in") or 60)
    except (TypeError, ValueError):
        lifetime = 60.0
    # The spec's minimum lifetime is 60 s; a smaller value is taken as given.
    return Token(value, time.monotonic() + lifetime)
