"""A network where only mirrors reach the internet, built from an images file.

Many users live here: CI runners that resolve no public registry, every pull going through a
pull-through cache named in the registries config. The world:

- **Upstream hosts cannot be reached.** :class:`OnlyLoopback` makes every name resolve to
  nothing except loopback ones (``socket.getaddrinfo`` and friends, in this process), and
  records every name that was asked. This is the one fake: DNS. It makes "cannot be reached"
  the same on a laptop without network and on a CI runner with full internet access, and it
  counts every attempt to reach ``docker.io``, ``ghcr.io``, … (a connection needs a lookup
  first). Proxy variables must be unset (the fixture does), or requests would go through a
  proxy instead.
- **Mirrors are real registries.** One distribution registry per upstream host (a mirror
  serves one upstream, under the upstream's own repository names: ``library/alpine`` for
  Docker Hub), each named under ``mirrors:`` for its upstream in a registries config.
- **The file's images are in the mirrors, as pull-through caches hold them.** Every image an
  entry names is generated (``tests.harness.images``, a few KiB): an entry pinned by digest
  is pushed by digest only, without any tag (a cache keeps what was pulled, by digest), and
  its pin in a rewritten copy of the file is replaced by the generated digest — tags,
  comments and everything else kept byte for byte; an entry by tag is pushed under its tag
  (``latest`` when it names neither). ``amd64Only`` entries are single-platform linux/amd64
  images, the rest are indexes (linux/amd64, linux/arm64). Every third entry (the 2nd, the
  5th, …) is signed with a cosign-style ``sha256-<hex>.sig`` tag next to it in the mirror, so
  that signatures are found where the image is.

Nothing here uses imagesync's code: the file is read with PyYAML's composer (scalars as
written), references are split by a few lines of our own, images are pushed with requests.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from tests.harness.images import (
    Pushed,
    connect,
    cosign_tag,
    push_cosign_signature,
    push_image,
    stable_seed,
)
from tests.harness.registry import RegistryServer

DOCKER_HUB = "docker.io"
# Small images: the world is about who is asked, not about bytes.
LAYER_SIZE = 2048
INDEX_PLATFORMS = ("linux/amd64", "linux/arm64")
PROXY_VARIABLES = tuple(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    for name in (base, base.lower())
)
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_TARGET_REPO_PREFIX_LINE = re.compile(r'^(targetRepoPrefix:\s*)("[^"]*"|\'[^\']*\'|[^\s#]+)', re.M)


# -- DNS: the one fake -----------------------------------------------------------------------


class OnlyLoopback:
    """While active, names other than loopback ones do not resolve in this process: the
    resolver answers as it does for a name that does not exist. ``refused`` lists every name
    that was asked and refused, in order (thread-safe: imagesync resolves from workers);
    ``addresses`` the (host, port) of every lookup that resolved, which is every connection
    made (an IP address is looked up too)."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.resolved: list[str] = []
        self.addresses: list[tuple[str, object]] = []
        self._lock = threading.Lock()
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> OnlyLoopback:
        real = {
            "getaddrinfo": socket.getaddrinfo,
            "gethostbyname": socket.gethostbyname,
            "gethostbyname_ex": socket.gethostbyname_ex,
        }
        self._saved = real

        def guarded(name: str) -> Callable[..., Any]:
            def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
                self._check(host, args[0] if args else kwargs.get("port"))
                return real[name](host, *args, **kwargs)

            return lookup

        for name in real:
            setattr(socket, name, guarded(name))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, function in self._saved.items():
            setattr(socket, name, function)

    def _check(self, host: Any, port: object = None) -> None:
        text = host.decode() if isinstance(host, bytes) else host
        if text is None or is_loopback_name(str(text)):
            with self._lock:
                self.resolved.append(str(text))
                self.addresses.append((str(text), port))
            return
        with self._lock:
            self.refused.append(str(text))
        # What glibc's resolver raises for NXDOMAIN.
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def is_loopback_name(host: str) -> bool:
    name = host.strip("[]")
    if name in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# -- the images file, read independently -----------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One entry as written: ``tag`` is the scalar's text (``3.10`` stays ``3.10``)."""

    index: int
    source: str
    tag: str | None
    amd64_only: bool


@dataclass(frozen=True)
class SourceName:
    """A source split by the distribution grammar's rules, Docker Hub normalised."""

    written_name: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, source: str) -> SourceName:
        name, _, digest = source.partition("@")
        tag = None
        if name.rfind(":") > name.rfind("/"):
            name, tag = name.rsplit(":", 1)
        first, slash, rest = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, name
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        return cls(name, registry, path, tag, digest or None)

    def target_repository(self) -> str:
        """The image-syncer's layout below the prefix: the name as written, ``library/`` in
        front of a single component, a port's ``:`` as ``-``."""
        written = self.written_name if "/" in self.written_name else f"library/{self.written_name}"
        return written.replace(":", "-")


def read_entries(text: str) -> list[FileEntry]:
    """The entries of an images file, scalars as written (PyYAML's composer, not its loader)."""
    root = yaml.compose(text)
    assert isinstance(root, MappingNode), "an images file is a mapping"
    images = next(v for k, v in root.value if isinstance(k, ScalarNode) and k.value == "images")
    assert isinstance(images, SequenceNode)
    entries = []
    for index, item in enumerate(images.value, start=1):
        assert isinstance(item, MappingNode)
        fields = {k.value: v.value for k, v in item.value if isinstance(v, ScalarNode)}
        amd64 = str(fields.get("amd64Only", "false")).lower() in ("true", "yes", "on")
        entries.append(FileEntry(index, fields["source"], fields.get("tag"), amd64))
    return entries


# -- the world -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MirroredImage:
    """What one entry names, as generated into its mirror, and where it must land."""

    entry: FileEntry
    name: SourceName
    mirror: RegistryServer
    image: Pushed
    signature: Pushed | None
    target_repository: str
    target_tag: str

    @property
    def by_digest_only(self) -> bool:
        return self.name.digest is not None

    def target(self, prefix: str) -> str:
        """``prefix/repository:tag``: where the image must land below ``prefix``."""
        return f"{prefix}/{self.target_repository}:{self.target_tag}"

    def signature_target(self, prefix: str) -> str:
        """Where its signature must land: ``sha256-<hex>.sig`` next to the image."""
        return f"{prefix}/{self.target_repository}:{cosign_tag(self.image.digest)}"


@dataclass
class MirroredFile:
    """A rewritten copy of an images file (``path``) whose every image is in the mirrors."""

    original: Path
    path: Path
    images: list[MirroredImage]
    digests: dict[str, str] = field(default_factory=dict)  # original pin -> generated digest

    def unique(self) -> list[MirroredImage]:
        """One per target tag: duplicate entries are one image."""
        seen: dict[tuple[str, str], MirroredImage] = {}
        for image in self.images:
            seen.setdefault((image.target_repository, image.target_tag), image)
        return list(seen.values())

    def untagged_repositories(self) -> set[tuple[RegistryServer, str]]:
        """Mirror repositories that hold images by digest and not one tag."""
        tagged = {
            (i.mirror.host, i.name.repository)
            for i in self.images
            if not i.by_digest_only or i.signature is not None
        }
        return {
            (i.mirror, i.name.repository)
            for i in self.images
            if (i.mirror.host, i.name.repository) not in tagged
        }


class MirrorWorld:
    """Mirrors started on demand (one per upstream host) and the registries config naming them.

    ``start`` starts a registry (the ``registry_factory`` fixture); ``directory`` holds the
    rewritten files and the registries config; ``dns`` is the active :class:`OnlyLoopback`.
    """

    def __init__(
        self, start: Callable[..., RegistryServer], directory: Path, dns: OnlyLoopback
    ) -> None:
        self._start = start
        self.directory = directory
        self.dns = dns
        self.mirrors: dict[str, RegistryServer] = {}
        self._generated: dict[tuple[str, str, str], tuple[Pushed, Pushed | None]] = {}

    def mirror(self, upstream: str) -> RegistryServer:
        if upstream not in self.mirrors:
            self.mirrors[upstream] = self._start(f"mirror-{upstream}")
        return self.mirrors[upstream]

    @property
    def registries_config(self) -> Path:
        """The registries config: each upstream host with its mirror, written anew."""
        path = self.directory / "registries.yaml"
        document = {
            "registries": {
                upstream: {"mirrors": [server.host]} for upstream, server in self.mirrors.items()
            }
        }
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    def mirror_file(
        self,
        original: Path,
        *,
        name: str | None = None,
        target_repo_prefix: str | None = None,
        signed: Callable[[FileEntry], bool] = lambda entry: entry.index % 3 == 2,
    ) -> MirroredFile:
        """Generate every image ``original`` names into the mirrors and write the rewritten
        copy. ``target_repo_prefix`` replaces the value of a ``targetRepoPrefix:`` line."""
        text = original.read_text(encoding="utf-8")
        entries = read_entries(text)
        sources = [SourceName.parse(entry.source) for entry in entries]
        # An image some entry needs whole (no amd64Only) is an index for every entry naming it.
        wanted: dict[tuple[str, str, str], tuple[SourceName, bool, bool]] = {}
        for entry, source in zip(entries, sources, strict=True):
            key = self._key(source)
            _, index, sign = wanted.get(key, (source, False, False))
            wanted[key] = (source, index or not entry.amd64_only, sign or signed(entry))
        for source, _, _ in wanted.values():
            self.mirror(source.registry)  # started here, not from the pushing threads
        with ThreadPoolExecutor(max_workers=4) as pool:
            generated = dict(
                zip(
                    wanted,
                    pool.map(lambda item: self._generate(*item), wanted.values()),
                    strict=True,
                )
            )
        images = []
        digests: dict[str, str] = {}
        for entry, source in zip(entries, sources, strict=True):
            image, signature = generated[self._key(source)]
            if source.digest:
                digests[source.digest] = image.digest
            images.append(
                MirroredImage(
                    entry=entry,
                    name=source,
                    mirror=self.mirror(source.registry),
                    image=image,
                    signature=signature,
                    target_repository=source.target_repository(),
                    target_tag=entry.tag or source.tag or "latest",
                )
            )
        rewritten = _DIGEST.sub(lambda match: digests.get(match.group(0), match.group(0)), text)
        if target_repo_prefix is not None:
            rewritten, count = _TARGET_REPO_PREFIX_LINE.subn(
                lambda match: f'{match.group(1)}"{target_repo_prefix}"', rewritten
            )
            assert count == 1, "the file has no targetRepoPrefix: line to rewrite"
        path = self.directory / (name or original.name)
        path.write_text(rewritten, encoding="utf-8")
        return MirroredFile(original, path, images, digests)

    @staticmethod
    def _key(source: SourceName) -> tuple[str, str, str]:
        return (source.registry, source.repository, source.digest or source.tag or "latest")

    def _generate(
        self, source: SourceName, index: bool, sign: bool
    ) -> tuple[Pushed, Pushed | None]:
        key = self._key(source)
        known = self._generated.get(key)
        if known is not None:
            return known
        pusher = connect(self.mirror(source.registry))
        # By digest only, as a pull-through cache holds a pinned image; else under its tag.
        tag = None if source.digest else (source.tag or "latest")
        platforms = INDEX_PLATFORMS if index else ("linux/amd64",)
        image = push_image(
            pusher,
            source.repository,
            tag,
            platforms,
            index=index,
            layers=1,
            layer_size=LAYER_SIZE,
            seed=stable_seed(*key),
        )
        signature = None
        if sign:
            signature = push_cosign_signature(
                pusher, source.repository, image, seed=stable_seed("signature", *key)
            )
        self._generated[key] = (image, signature)
        return image, signature
