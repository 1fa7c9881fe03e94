"""The registries config: per-registry behaviour (mirrors, TLS, plain HTTP, concurrency).

Example::

    registries:
      docker.io:
        mirrors: ["mirror.gcr.io"]
      localhost:5000:
        insecure: true
      registry.internal:
        ca_file: ca.pem
        max_concurrency: 4
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
from imagesync.yamlsyntax import explain as explain_syntax

DEFAULT_MAX_CONCURRENCY = 8
# Each unit is a connection kept in a pool: more than this is a typo, not a plan.
MAX_CONCURRENCY = 256
# A registries config is a few lines; a bigger file is the wrong file.
MAX_CONFIG_BYTES = 1024 * 1024
_KEYS = {"mirrors", "insecure", "ca_file", "max_concurrency"}
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# host[:port] as registries are named in image references: no scheme, no path.
_HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")


@dataclass(frozen=True)
class RegistrySettings:
    """How to talk to one registry. ``mirrors`` are hosts tried, in order, before it for pulls."""

    mirrors: tuple[str, ...] = ()
    insecure: bool = False
    ca_file: Path | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY


@dataclass(frozen=True)
class RegistriesConfig:
    registries: dict[str, RegistrySettings] = field(default_factory=dict)

    def settings(self, registry: str) -> RegistrySettings:
        if registry in self.registries:
            return self.registries[registry]
        if registry == DOCKER_HUB_ENDPOINT and DOCKER_HUB in self.registries:
            return self.registries[DOCKER_HUB]
        return RegistrySettings()

    def uses_plain_http(self, host: str) -> bool:
        """Plain HTTP only for registries listed insecure, or loopback addresses."""
        return self.settings(host).insecure or is_loopback(host)


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
    mirrors = value.get("mirrors", [])
    if not isinstance(mirrors, list) or not all(
        isinstance(m, str) and _HOST_RE.fullmatch(m) for m in mirrors
    ):
        raise ConfigError(
            f"{where}.mirrors must be a list of registry hosts",
            'write each as host or host:port, without scheme or path: ["mirror.gcr.io"]',
        )
    insecure = value.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError(
            f"{where}.insecure must be true or false", "write insecure: true or insecure: false"
        )
    concurrency = value.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ConfigError(
            f"{where}.max_concurrency must be a whole number from 1 to {MAX_CONCURRENCY}",
            f"write how many requests may be in flight: max_concurrency: {DEFAULT_MAX_CONCURRENCY}",
        )
    ca_file = value.get("ca_file")
    ca_path: Path | None = None
    if ca_file is not None:
        if not isinstance(ca_file, str) or not ca_file or "\0" in ca_file:
            raise ConfigError(f"{where}.ca_file must be a path")
        # Relative paths are read from the config's folder, like other tools' configs do.
        try:
            ca_path = (source.parent / ca_file).resolve()
            found = ca_path.is_file()
        except (OSError, ValueError, RuntimeError):
            found = False
        if ca_path is None or not found:
            raise ConfigError(f"{where}.ca_file: {ca_path or ca_file} does not exist")
    return RegistrySettings(tuple(mirrors), insecure, ca_path, concurrency)
