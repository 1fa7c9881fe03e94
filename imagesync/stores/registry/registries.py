"""The registries config: per-registry behaviour (mirrors, TLS, plain HTTP, concurrency) and
the cosign keys that go with a registry (the key that signs what lands in the target, the keys
that verify a source's images).

Example::

    registries:
      docker.io:
        mirrors: ["mirror.gcr.io"]
      localhost:5000:
        insecure: true
      registry.internal:
        ca_file: ca.pem
        max_concurrency: 4
      123456789012.dkr.ecr.eu-west-1.amazonaws.com:
        kind: ecr                     # the default from this host name anyway
        create_repositories: true     # plan lists missing repositories; apply creates them
        sign:
          key: cosign.key
          public_key: cosign.pub
      ghcr.io:
        verify:
          keys: [vendor.pub]

Paths are relative to the config's folder. Key files are only named here, not read: a plan
job reads the public key alone, and the private key may not exist where plan runs
(``imagesync/keyring.py`` reads what a command needs).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from imagesync.diagnostics import InvalidFile, Problem, closest
from imagesync.errors import ConfigError, shorten
from imagesync.inputfile import InputTooLarge, UnreadableInput, read_input
from imagesync.reference import DOCKER_HUB, DOCKER_HUB_ENDPOINT
from imagesync.stores.registry.kinds import Capabilities, Kind, capabilities_of, kind_for_host
from imagesync.yamlsyntax import explain as explain_syntax

DEFAULT_MAX_CONCURRENCY = 8
# Each unit is a connection kept in a pool: more than this is a typo, not a plan.
MAX_CONCURRENCY = 256
# A registries config is a few lines; a bigger file is the wrong file.
MAX_CONFIG_BYTES = 1024 * 1024
_KEYS = {
    "mirrors",
    "insecure",
    "ca_file",
    "max_concurrency",
    "sign",
    "verify",
    "kind",
    "create_repositories",
}
_SIGN_KEYS = {"key", "public_key"}
_VERIFY_KEYS = {"keys"}
# A registry's publishers sign with a few keys; more is the wrong list.
MAX_VERIFY_KEYS = 64
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# host[:port] as registries are named in image references: no scheme, no path.
_HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")


@dataclass(frozen=True)
class SignSettings:
    """``sign:`` of the target's registry: ``key`` signs (apply, sync); ``public_key`` is its
    public half, all that plan needs (without it, plan reads the public half from ``key``).
    ``where`` names the setting in messages."""

    where: str
    key: Path | None = None
    public_key: Path | None = None


@dataclass(frozen=True)
class RegistrySettings:
    """How to talk to one registry. ``mirrors`` are hosts tried, in order, before it for pulls.
    ``sign``: the key that signs what lands in it as a target; ``verify_keys``: public keys,
    one of which must have signed each image read from it as a source. ``kind``: what
    implementation it is (None: its host name says, :func:`kind_for_host`);
    ``create_repositories``: a target repository that does not exist is a change of the plan,
    created by apply (for registries that create none on push: ECR)."""

    mirrors: tuple[str, ...] = ()
    insecure: bool = False
    ca_file: Path | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    sign: SignSettings | None = None
    verify_keys: tuple[Path, ...] = ()
    kind: Kind | None = None
    create_repositories: bool = False


@dataclass(frozen=True)
class RegistriesConfig:
    registries: dict[str, RegistrySettings] = field(default_factory=dict)

    def settings(self, registry: str) -> RegistrySettings:
        if registry in self.registries:
            return self.registries[registry]
        if registry == DOCKER_HUB_ENDPOINT and DOCKER_HUB in self.registries:
            return self.registries[DOCKER_HUB]
        return RegistrySettings()

    def kind(self, registry: str) -> Kind:
        """What implementation ``registry`` is: its ``kind:``, else its host name's."""
        return self.settings(registry).kind or kind_for_host(registry)

    def capabilities(self, registry: str) -> Capabilities:
        """What ``registry`` does that its answers cannot tell (:mod:`.kinds`)."""
        return capabilities_of(self.kind(registry))


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def load_registries_config(path: str | Path | None) -> RegistriesConfig:
    """Read and check a registries config; None gives the defaults."""
    if path is None:
        return RegistriesConfig()
    source = Path(path)
    try:
        text = read_input(source, MAX_CONFIG_BYTES).decode("utf-8")
        document = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
    except InputTooLarge:
        raise ConfigError(
            f"{source}: the registries config is larger than {MAX_CONFIG_BYTES} bytes",
            "check the --registries-config path",
        ) from None
    except UnreadableInput as error:
        raise ConfigError(
            f"{source}: cannot read the registries config: {error.reason}",
            "check the --registries-config path",
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{source}: the registries config is not UTF-8 text (byte {error.start})",
            "save it as UTF-8",
        ) from None
    except yaml.MarkedYAMLError as error:
        problem = explain_syntax(error, text)
        raise InvalidFile(
            source, (Problem(str(source), problem.line, None, problem.message, problem.hint),)
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}", "fix the YAML syntax") from None
    except ValueError as error:
        # What PyYAML reads but cannot build: "\U00110000", 2001-13-45, a 5,000-digit number.
        raise ConfigError(
            f"{source}: not valid YAML: {str(error)[:200]}", "quote the value, or fix it"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{source}: the registries config nests too deeply", "fix the YAML structure"
        ) from None
    try:
        return _config(source, document)
    except ConfigError as error:
        raise _located(source, lines, error) from None


def _config(source: Path, document: Any) -> RegistriesConfig:
    if document is None:
        return RegistriesConfig()
    if isinstance(document, dict) and len(document) == 1 and "registries" not in document:
        (key,) = document
        match = closest(str(key), ["registries"])
        raise ConfigError(
            f"{source}: unknown key {shorten(repr(key))}"
            + (f": did you mean {match}?" if match else ""),
            f"rename it to {match}" if match else "list the registries under `registries:`",
        )
    if not isinstance(document, dict) or set(document) - {"registries"}:
        raise ConfigError(
            f"{source}: the registries config is a mapping with one key, 'registries'",
            "see the README's 'Registries config' section",
        )
    entries = document.get("registries") or {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{source}: 'registries' must map registry hosts to settings")
    registries = {}
    for host, value in entries.items():
        if not isinstance(host, str) or not _HOST_RE.fullmatch(host):
            raise ConfigError(
                f"{source}: registries: {shorten(repr(host))} is not a registry host",
                "write a host as in image references, without scheme or path: "
                'registry.example.com or "localhost:5000"',
            )
        registries[host] = _settings(source, host, value)
    return RegistriesConfig(registries)


_Lines = dict[tuple[str, ...], int]


def _key_lines(node: Node | None, path: tuple[str, ...] = ()) -> _Lines:
    """The 1-based line of each key, by its path of keys."""
    lines: _Lines = {}
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                lines[(*path, key.value)] = key.start_mark.line + 1
                lines.update(_key_lines(value, (*path, key.value)))
    return lines


def _names(message: str, path: tuple[str, ...]) -> bool:
    dotted = re.escape(".".join(path))
    if re.search(rf"(?<![\w.-]){dotted}(?![\w-])", message):
        return True
    parent = ".".join(path[:-1])
    return repr(path[-1]) in message and (not parent or parent in message)


def _located(source: Path, lines: _Lines, error: ConfigError) -> InvalidFile:
    """``error`` as a problem on the line of the deepest key its message names
    (``registries.HOST.KEY``, or a key it quotes), as the images file reports its problems."""
    message = error.message.removeprefix(f"{source}: ")
    named = [(len(path), number) for path, number in lines.items() if _names(message, path)]
    line = max(named)[1] if named else 1
    return InvalidFile(source, (Problem(str(source), line, None, message, error.hint),))


def _settings(source: Path, host: str, value: Any) -> RegistrySettings:
    where = f"{source}: registries.{host}"
    if value is None:
        return RegistrySettings()
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where} must be a mapping of settings", "indent its settings under it: insecure: true"
        )
    unknown = sorted(str(key) for key in set(value) - _KEYS)
    if unknown:
        match = closest(unknown[0], sorted(_KEYS))
        raise ConfigError(
            f"{where}: unknown key {shorten(repr(unknown[0]))}"
            + (f": did you mean {match}?" if match else ""),
            f"rename it to {match}" if match else f"the known keys are {', '.join(sorted(_KEYS))}",
        )
    return RegistrySettings(
        _mirrors(where, value.get("mirrors", [])),
        _flag(where, "insecure", value.get("insecure", False)),
        _ca_file(source, where, value.get("ca_file")),
        _concurrency(where, value.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)),
        _sign(source, f"{where}.sign", value.get("sign")),
        _verify_keys(source, f"{where}.verify", value.get("verify")),
        _kind(where, value.get("kind")),
        _flag(where, "create_repositories", value.get("create_repositories", False)),
    )


def _mirrors(where: str, mirrors: Any) -> tuple[str, ...]:
    if not isinstance(mirrors, list) or not all(
        isinstance(m, str) and _HOST_RE.fullmatch(m) for m in mirrors
    ):
        raise ConfigError(
            f"{where}.mirrors must be a list of registry hosts",
            'write each as host or host:port, without scheme or path: ["mirror.gcr.io"]',
        )
    return tuple(mirrors)


def _flag(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            f"{where}.{key} must be true or false", f"write {key}: true or {key}: false"
        )
    return value


def _concurrency(where: str, concurrency: Any) -> int:
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ConfigError(
            f"{where}.max_concurrency must be a whole number from 1 to {MAX_CONCURRENCY}",
            f"write how many requests may be in flight: max_concurrency: {DEFAULT_MAX_CONCURRENCY}",
        )
    return concurrency


def _ca_file(source: Path, where: str, ca_file: Any) -> Path | None:
    if ca_file is None:
        return None
    ca_path = _path(source, f"{where}.ca_file", ca_file)
    try:
        found = ca_path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise ConfigError(f"{where}.ca_file: {ca_path} does not exist")
    return ca_path


def _kind(where: str, value: Any) -> Kind | None:
    if value is None:
        return None
    kinds = [kind.value for kind in Kind]
    if value in kinds:
        return Kind(value)
    match = closest(str(value), kinds)
    raise ConfigError(
        f"{where}.kind: {shorten(repr(value))} is no kind of registry"
        + (f": did you mean {match}?" if match else ""),
        f"write one of {', '.join(kinds)}",
    )


def _sign(source: Path, where: str, value: Any) -> SignSettings | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - _SIGN_KEYS:
        raise ConfigError(
            f"{where} must be a mapping with key and, optionally, public_key",
            "write sign: {key: cosign.key, public_key: cosign.pub}",
        )
    if value.get("key") is None:
        raise ConfigError(
            f"{where} has no key", "name the private key that signs: sign: {key: cosign.key}"
        )
    public_key = value.get("public_key")
    return SignSettings(
        where,
        _path(source, f"{where}.key", value["key"]),
        None if public_key is None else _path(source, f"{where}.public_key", public_key),
    )


def _verify_keys(source: Path, where: str, value: Any) -> tuple[Path, ...]:
    if value is None:
        return ()
    keys = value.get("keys") if isinstance(value, dict) and not set(value) - _VERIFY_KEYS else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_VERIFY_KEYS:
        raise ConfigError(
            f"{where} must be a mapping with keys, a list of 1 to {MAX_VERIFY_KEYS} public keys",
            "write verify: {keys: [cosign.pub]}",
        )
    return tuple(_path(source, f"{where}.keys[{i}]", key) for i, key in enumerate(keys))


def _path(source: Path, where: str, value: Any) -> Path:
    """A path of the config, read from the config's folder when relative (as other tools'
    configs do)."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigError(f"{where} must be a path")
    try:
        return (source.parent / value).resolve()
    except (OSError, ValueError, RuntimeError):
        raise ConfigError(f"{where}: {shorten(value)} is not a path that can be read") from None
