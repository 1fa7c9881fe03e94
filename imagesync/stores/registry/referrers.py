"""The OCI referrers API, and what each host's answers said about having it.

A host without the API is not asked again; while nobody knows, one request at a time per
host finds out. Callers fall back to the tag schema when this says None.
"""

from __future__ import annotations

import threading
from urllib.parse import urlencode, urljoin, urlsplit

from imagesync.content import mediatypes
from imagesync.content.manifest import MAX_MANIFEST_BYTES, Descriptor, Manifest
from imagesync.errors import RegistryError
from imagesync.redact import excerpt
from imagesync.reference import Repository
from imagesync.stores.registry.answers import (
    Answer,
    raise_for_status,
    registry_message,
    shown_url,
)
from imagesync.stores.registry.core import Core, Endpoint, Read, media_type, next_link

# A referrers list this long is not something a registry should page through.
MAX_REFERRERS_PAGES = 1000


class Referrers:
    """Referrers requests over a :class:`Core`. Thread-safe."""

    def __init__(self, core: Core) -> None:
        self._core = core
        # Whether a host has the referrers API, once an answer told.
        self._api: dict[str, bool] = {}
        self._probes: dict[str, threading.Lock] = {}

    def find(
        self,
        repository: Repository,
        digest: str,
        *,
        pull: bool,
        artifact_type: str | None,
        at: Endpoint | None,
    ) -> list[Descriptor] | None:
        """Descriptors from the OCI referrers API; None when the registry does not offer it.

        Every page is read (``Link: <...>; rel="next"``). With ``artifact_type`` the registry
        is asked to filter; one that does not say so in ``OCI-Filters-Applied`` is filtered
        here.
        """
        # Only one endpoint is asked (``at``, else the first): a mirror without the API falls
        # back to the tag schema, which the mirror serves like any tag.
        endpoint = at or self._core.endpoints(repository, pull)[0]
        known = self._api.get(endpoint.host)
        if known is None:
            with self._core.lock:
                probe = self._probes.setdefault(endpoint.host, threading.Lock())
            with probe:
                if self._api.get(endpoint.host) is False:
                    return None
                return self._pages(endpoint, repository, digest, artifact_type)
        if not known:
            return None
        return self._pages(endpoint, repository, digest, artifact_type)

    def _pages(
        self, endpoint: Endpoint, repository: Repository, digest: str, artifact_type: str | None
    ) -> list[Descriptor] | None:
        path: str | None = f"/v2/{repository.path}/referrers/{digest}"
        if artifact_type:
            path = f"{path}?{urlencode({'artifactType': artifact_type})}"
        what = f"referrers of {repository}@{digest}"
        found: list[Descriptor] = []
        filtered = False
        seen: set[str] = set()
        while path:
            if path in seen or len(seen) >= MAX_REFERRERS_PAGES:
                raise RegistryError(f"{what}: the registry's pages do not end")
            seen.add(path)
            accept = {"Accept": mediatypes.OCI_INDEX}
            read = Read(repository, "GET", path, False, headers=accept, limit=MAX_MANIFEST_BYTES)
            answer = self._core.send(endpoint, read)
            content_type = media_type(answer)
            if len(seen) == 1 and not self._has_api(endpoint.host, answer):
                answer.close()
                return None
            raise_for_status(answer, what)
            if content_type != mediatypes.OCI_INDEX:
                raise RegistryError(
                    f"{what}: a page is {excerpt(repr(content_type), 100)}, not an OCI index"
                )
            applied = answer.headers.get("OCI-Filters-Applied", "")
            filtered = "artifacttype" in {f.strip().lower() for f in applied.split(",")}
            found.extend(Manifest.parse(answer.body, mediatypes.OCI_INDEX, what).children)
            path = self._same_host_link(endpoint.host, answer, what)
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _has_api(self, host: str, answer: Answer) -> bool:
        """Judge a first referrers answer; remember what it says about the host.

        A registry with the API answers an OCI index, empty when nothing refers to the digest.
        One without answers 404 (the route is unknown; the distribution registry 2.8 says
        "404 page not found" as text), 405 or 501, or a 200 that is not an index (an HTML page
        from a proxy). A 404 NAME_UNKNOWN is a missing repository: that says nothing about
        the host, so it is not remembered. Other errors (denied, 5xx) are not "no API": they
        are raised by the caller, rather than silently falling back to the tag schema.
        """
        status = answer.status_code
        content_type = media_type(answer)
        if status == 404 and registry_message(answer)[1] == "NAME_UNKNOWN":
            return False
        if status in (404, 405, 501) or (status < 400 and content_type != mediatypes.OCI_INDEX):
            self._api[host] = False
            return False
        if status < 400:
            self._api[host] = True
        return True

    def _same_host_link(self, host: str, answer: Answer, what: str) -> str | None:
        """The next page from a ``Link`` header, refused when it points at another host."""
        link = next_link(answer)
        if link is None:
            return None
        base = self._core.transport.url(host, "/")
        absolute = urljoin(base, link)
        if urlsplit(absolute).netloc != urlsplit(base).netloc:
            raise RegistryError(f"{what}: the next page is on another host ({shown_url(link)})")
        return absolute
