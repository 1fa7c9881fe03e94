"""Tag lists: the tags of a repository that a caller needs, through every page."""

from __future__ import annotations

from imagesync.content.documents import json_object
from imagesync.errors import RegistryError
from imagesync.inputfile import limit_text
from imagesync.reference import Repository
from imagesync.stores.registry.answers import raise_for_status
from imagesync.stores.registry.core import Core, Endpoint, Read, next_link

# A tag list longer than this many pages is a registry that never stops paging.
MAX_TAG_PAGES = 1000
# One page of a tag list (registries that ignore ?n= send every tag at once, some with a
# manifest map), and all pages together: a million tags is a broken or hostile registry.
MAX_TAG_PAGE_BYTES = 16 * 1024 * 1024
MAX_TAG_LIST_BYTES = 64 * 1024 * 1024


def list_tags(
    core: Core,
    repository: Repository,
    *,
    pull: bool,
    at: Endpoint | None,
    prefixes: tuple[str, ...],
) -> list[str]:
    """The tags of a repository that start with one of ``prefixes``, following pagination;
    empty if it does not exist (as a mirror answers for a repository it holds by digest only).
    Only those are kept: a repository may hold a million tags, of which a caller needs a few.

    Without ``at`` a mirror's 404 passes the question on to the next endpoint, like any read;
    with ``at`` only that endpoint is asked.
    """
    tags: list[str] = []
    path: str | None = f"/v2/{repository.path}/tags/list?n=1000"
    seen: set[str] = set()
    received = 0
    what = f"the tag list of {repository}"
    while path:
        if path in seen or len(seen) >= MAX_TAG_PAGES:
            raise RegistryError(f"{what} has pages without end")
        seen.add(path)
        read = Read(repository, "GET", path, pull, at, limit=MAX_TAG_PAGE_BYTES)
        answer, _ = core.read(read)
        if answer.status_code == 404:
            return tags
        raise_for_status(answer, f"list tags of {repository}")
        received += len(answer.body)
        if received > MAX_TAG_LIST_BYTES:
            raise RegistryError(f"{what} is longer than {limit_text(MAX_TAG_LIST_BYTES)}")
        page = json_object(answer.body, what).get("tags")
        if page is None:
            page = []
        if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
            raise RegistryError(f"{what} is not a list of tags")
        tags.extend(t for t in page if t.startswith(prefixes))
        path = next_link(answer)
    return tags
