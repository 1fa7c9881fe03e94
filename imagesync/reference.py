"""Image references: parsing by the distribution grammar into small typed values.

The grammar is the one of github.com/distribution/reference; Docker Hub normalisation
(no host means ``docker.io``, a single path component means ``library/NAME``) happens here and
nowhere else, so every other module works with normalised values.

A repository can also be an OCI image layout on disk: its registry is :data:`LAYOUT` and its
path the layout's absolute directory, and it reads as skopeo writes it, ``oci:/mnt/disk/R``
(with ``:TAG`` or ``@DIGEST``). A layout directory's path holds no ``:`` and no ``@``, so such a
reference parses without knowing where its tree begins.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from imagesync.errors import InvalidReference

DOCKER_HUB = "docker.io"
# docker.io is a name, not a host: its registry API lives on this endpoint.
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
TAG_PATTERN = r"[\w][\w.-]{0,127}"
MAX_TAG_LENGTH = 128

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
# Go's \w (the grammar's home) is ASCII; Python's would also accept letters such as 'é'.
_TAG_RE = re.compile(TAG_PATTERN, re.ASCII)
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
_DIGEST_ALGORITHM_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:")
# What follows an '@' that makes the text before it a URL's user info, not a name: a host
# with a dot or localhost, or anything with a path; and not a digest (algorithm:encoded,
# where a port is all digits). ``busybox@md5:0123`` is a bad digest, not a password.
_AFTER_USERINFO_RE = re.compile(r"[^/@]*(?:\.|localhost)[^/@]*(?:/.*)?|[^/@]+/.*", re.DOTALL)
_DIGEST_LIKE_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:(?![0-9]*$)[a-zA-Z0-9=_-]*")

MAX_NAME_LENGTH = 255

# The registry of a repository that is an OCI image layout directory.
LAYOUT = "oci"
_LAYOUT_PREFIX = "oci:"


def is_valid_tag(tag: str) -> bool:
    return _TAG_RE.fullmatch(tag) is not None


def is_valid_digest(digest: str) -> bool:
    return _DIGEST_RE.fullmatch(digest) is not None


def check_digest(digest: str) -> str:
    """Return ``digest`` or raise a InvalidReference that says what is wrong with it."""
    if is_valid_digest(digest):
        return digest
    algorithm, _, hex_part = digest.partition(":")
    if algorithm == "sha256" and re.fullmatch(r"[a-fA-F0-9]*", hex_part):
        if hex_part != hex_part.lower():
            raise InvalidReference(
                f"digest {digest!r} has upper-case hex", f"write it in lower case: {digest.lower()}"
            )
        raise InvalidReference(
            f"digest {digest!r} has {len(hex_part)} hex characters, sha256 needs 64",
            "copy the whole digest, sha256: and 64 hex characters, as the registry prints it",
        )
    raise InvalidReference(
        f"digest {digest!r} is not of the form sha256:<64 hex characters>",
        "copy the digest as the registry prints it",
    )


@dataclass(frozen=True, order=True)
class Repository:
    """A repository in a registry: ``registry`` is a normalised host[:port]."""

    registry: str
    path: str

    def __str__(self) -> str:
        if self.registry == LAYOUT:
            return f"{_LAYOUT_PREFIX}{self.path}"
        return f"{self.registry}/{self.path}" if self.path else self.registry

    @property
    def is_layout(self) -> bool:
        """Whether this is a directory of OCI image layouts (or one of them), not a registry's."""
        return self.registry == LAYOUT

    @property
    def endpoint(self) -> str:
        """The host[:port] that serves the registry API for this repository."""
        return DOCKER_HUB_ENDPOINT if self.registry == DOCKER_HUB else self.registry

    def child(self, path: str) -> Repository:
        return Repository(self.registry, f"{self.path}/{path}" if self.path else path)

    def contains(self, other: Repository) -> bool:
        """True when ``other`` is this repository or lies below it."""
        if other.registry != self.registry:
            return False
        return not self.path or other.path == self.path or other.path.startswith(self.path + "/")


@dataclass(frozen=True, order=True)
class Reference:
    """A repository plus a tag and/or a digest.

    ``written_name`` keeps the name as the user wrote it (before normalisation) because the
    target mapping is defined on the written form; it does not take part in equality.
    """

    repository: Repository
    tag: str | None = None
    digest: str | None = None
    written_name: str = field(default="", compare=False, repr=False)

    @property
    def registry(self) -> str:
        return self.repository.registry

    @property
    def path(self) -> str:
        return self.repository.path

    def __str__(self) -> str:
        text = str(self.repository)
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/`` in a registry URL: the digest if known, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.repository, self.tag, digest, self.written_name)

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.repository, tag, self.digest, self.written_name)


def without_userinfo(text: str) -> str:
    """``text`` as a message may quote it: a ``user:password@`` before the host (no reference
    holds one, but a URL copied into an images file does) written as ``***@``. Every message
    that quotes a reference or prefix a user wrote quotes this."""
    for at in reversed([i for i, c in enumerate(text) if c == "@"]):
        rest = text[at + 1 :]
        if _AFTER_USERINFO_RE.fullmatch(rest) and not _DIGEST_LIKE_RE.fullmatch(rest):
            scheme, separator, _ = text[:at].partition("://")
            return f"{scheme}://***@{rest}" if separator else f"***@{rest}"
    return text


def _no_userinfo(text: str) -> None:
    """``user:password@host/...``: credentials in a name would be echoed in every message,
    plan and log that shows it; they belong in the credential store."""
    if without_userinfo(text) != text:
        raise InvalidReference(
            "a user or password is written before the registry host (shown as ***)",
            "remove it (and change that password: it was written in a file); give "
            "credentials with docker login or a credential helper",
        )


def _split_domain(name: str) -> tuple[str | None, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        return None, name
    if "." in first or ":" in first or first == "localhost" or first != first.lower():
        return first, rest
    return None, name


def parse_repository(text: str) -> Repository:
    """Parse a repository name (no tag, no digest), normalising Docker Hub names."""
    if not text:
        raise InvalidReference("the name is empty", "write a repository such as 'busybox'")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidReference(
            f"the name is {len(text)} characters long, at most {MAX_NAME_LENGTH} are allowed",
            "shorten it",
        )
    domain, path = _split_domain(text)
    if domain is not None and not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReference(f"{domain!r} is not a valid registry host", _HOST_HINT)
    if not _PATH_RE.fullmatch(path):
        raise InvalidReference(_explain_bad_path(path), _path_hint(path, domain))
    registry = DOCKER_HUB if domain is None or domain in _DOCKER_HUB_ALIASES else domain
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return Repository(registry, path)


def parse_registry_prefix(text: str) -> Repository:
    """Parse a target prefix such as ``reg.io/ext``, a bare ``localhost:5000``, or a layout
    tree ``oci:DIR`` (see :func:`parse_layout_tree`)."""
    if text.strip().startswith(_LAYOUT_PREFIX):
        return parse_layout_tree(text.strip())
    _no_userinfo(text)
    _no_scheme(text)
    stripped = text.strip().rstrip("/")
    hostlike = "." in stripped or ":" in stripped or stripped == "localhost"
    if hostlike and "/" not in stripped and _DOMAIN_RE.fullmatch(stripped):
        return Repository(stripped, "")
    repository = parse_repository(stripped)
    if repository.registry == DOCKER_HUB:
        # A prefix is a namespace, not an image name: docker.io/myorg is the myorg
        # organisation; library/ is only put in front of single-component image names.
        return Repository(DOCKER_HUB, _split_domain(stripped)[1])
    return repository


def parse_layout_tree(text: str) -> Repository:
    """A directory of OCI image layouts, ``oci:DIR`` or ``DIR``; a relative DIR is taken
    from the current directory. Its layouts are ``DIR/R``, one per repository ``R``."""
    given = text[len(_LAYOUT_PREFIX) :] if text.startswith(_LAYOUT_PREFIX) else text
    if not given.strip():
        raise InvalidReference("the layout directory is empty", "write oci:DIR, e.g. oci:/mnt/disk")
    if any(c in given for c in ":@\0\n\r"):
        raise InvalidReference(
            f"layout directory {given!r} holds ':' or '@', which end a layout's path in a "
            "reference (oci:PATH:TAG, as skopeo reads it too)",
            "pick a directory whose path has neither",
        )
    path = "/" + os.path.normpath(os.path.abspath(given)).lstrip("/")
    if path == "/":
        raise InvalidReference("a layout tree cannot be /", "pick a directory below it")
    return Repository(LAYOUT, path)


def layout_repository(tree: Repository, path: str) -> Repository:
    """The layout of repository ``path`` (registry grammar) in the layout tree ``tree``."""
    if not _PATH_RE.fullmatch(path):
        raise InvalidReference(_explain_bad_path(path), _path_hint(path))
    return tree.child(path)


_HOST_HINT = (
    "a registry host is letters, digits, '-' and '.', with an optional :port, such as "
    "registry.example.com or localhost:5000"
)


def _path_hint(path: str, domain: str | None = None) -> str:
    """What a valid repository looks like: the user's own, corrected, where that is clear.

    A first component that is a host only by its capitals (``Foo/Bar``) was meant as a path."""
    if domain is not None and not ("." in domain or ":" in domain or domain == "localhost"):
        path, domain = f"{domain}/{path}", None
    corrected = re.sub(r"\.{2,}", ".", re.sub(r"/+", "/", path.lower()).strip("/"))
    if corrected != path and _PATH_RE.fullmatch(corrected):
        return f"write the repository as {f'{domain}/' if domain else ''}{corrected}"
    return (
        "a repository is lower-case letters and digits, its components separated by '/' and "
        "each joined by one '.', '_', '__' or '-', such as bitnami/postgres-exporter"
    )


def _no_scheme(text: str) -> None:
    """``https://host/path`` is a URL; references and prefixes name the host without one."""
    scheme, separator, rest = text.strip().partition("://")
    if separator and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        hint = f"leave out {scheme}://: write {rest.rstrip('/') or 'the host'}"
        if scheme.lower() == "http":
            hint += "; plain HTTP is `insecure: true` for the host in --registries-config"
        raise InvalidReference(f"{text.strip()!r} starts with the URL scheme {scheme}://", hint)


def _explain_bad_path(path: str) -> str:
    if path != path.lower():
        return f"repository {path!r} has upper-case letters; repository names are lower case"
    if "//" in path or path.startswith("/") or path.endswith("/") or not path:
        return f"repository {path!r} has an empty path component"
    if ".." in path:
        return f"repository {path!r} has '..'; separators must stand between letters or digits"
    return (
        f"repository {path!r} is not valid: components are lower-case letters and digits "
        "separated by '.', '_', '__' or '-'"
    )


def parse_reference(text: str) -> Reference:
    """Parse ``[host[:port]/]path[:tag][@digest]``.

    Raises InvalidReference with the reason and the fix; never returns a half-parsed value.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("the reference is empty", "write an image such as 'busybox:1.36'")
    _no_userinfo(text)
    if text != text.strip():
        raise InvalidReference(f"{text!r} has surrounding white space", "remove the spaces")
    if text.startswith(f"{_LAYOUT_PREFIX}/"):
        return _parse_layout_reference(text)
    _no_scheme(text)
    remainder, at, digest = text.partition("@")
    if at:
        if _DIGEST_ALGORITHM_RE.match(digest) is None:
            raise InvalidReference(
                f"digest {digest!r} has no algorithm", "write it as sha256:<64 hex characters>"
            )
        check_digest(digest)
    tag: str | None = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not is_valid_tag(tag):
            raise InvalidReference(
                f"tag {tag!r} is not valid",
                "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            )
    repository = parse_repository(remainder)
    return Reference(repository, tag, digest or None, written_name=remainder)


def _parse_layout_reference(text: str) -> Reference:
    """``oci:/DIR[:TAG][@DIGEST]``: a manifest in the OCI image layout DIR."""
    remainder, at, digest = text[len(_LAYOUT_PREFIX) :].partition("@")
    if at:
        check_digest(digest)
    path, colon, tag = remainder.partition(":")
    if colon and not is_valid_tag(tag):
        raise InvalidReference(
            f"tag {tag!r} is not valid",
            "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        )
    if os.path.normpath(path) != path or path == "/" or path.startswith("//") or "\0" in path:
        raise InvalidReference(
            f"layout directory {path!r} is not an absolute path in its shortest form",
            "write the layout's directory as it is, e.g. oci:/mnt/disk/library/alpine:3.20",
        )
    repository = Repository(LAYOUT, path)
    return Reference(repository, tag or None, digest or None, written_name=path)
