"""The OCI referrers API path, against a FAKE: the Debian registry 2.8 lacks the referrers API.

``ReferrersApiFake`` is a small proxy in front of a real registry (design.md §8: fakes only where
the real registry cannot show a behaviour, named as such). It forwards every request unchanged,
remembers each manifest PUT that carries a ``subject``, and answers
``GET /v2/<name>/referrers/<digest>`` from that memory the way the OCI distribution spec 1.1
says: an OCI index, ``artifactType`` filtering announced in ``OCI-Filters-Applied``, pages joined
by ``Link: <...>; rel="next"``, and 404 NAME_UNKNOWN for a repository that does not exist.
Everything else (manifests, blobs, tags, the tag schema) is the real registry's doing.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.errors import RegistryError
from imagesync.plan.document import Action, Plan
from imagesync.reference import parse_reference
from imagesync.stores.connection import ConnectionOptions, open_client
from tests.harness.images import push_image, push_referrer
from tests.harness.loopback import LoopbackServer
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import inspect_digest, inspect_raw, list_tags

pytestmark = pytest.mark.registry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SPDX = "application/spdx+json"
IN_TOTO = "application/vnd.in-toto+json"
COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailers", "upgrade"}
REFERRERS_PATH = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
MANIFEST_PATH = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")


class ReferrersApiFake:
    """A FAKE referrers API in front of a real registry (which lacks one); see the module doc.

    ``page_size`` splits answers into pages; ``honour_filters=False`` plays a registry that
    ignores ``artifactType`` (and so does not announce it); ``referrers_status`` makes the
    endpoint answer that error instead. ``requests`` records (method, path) of everything.
    """

    def __init__(self, upstream: RegistryServer, *, page_size: int | None = None) -> None:
        self.upstream = upstream.host
        self.page_size = page_size
        self.honour_filters = True
        self.referrers_status: int | None = None
        self.next_link_host: str | None = None
        self.requests: list[tuple[str, str]] = []
        self._referrers: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)
        self.host = self._server.host

    def close(self) -> None:
        self._server.close()

    def referrer_requests(self) -> list[str]:
        return [path for method, path in self.requests if "/referrers/" in path]

    def manifest_requests(self) -> list[str]:
        return [f"{m} {p}" for m, p in self.requests if MANIFEST_PATH.match(urlsplit(p).path)]

    # -- the fake API ------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append((request.command, request.path))
        body = self._body(request)
        url = urlsplit(request.path)
        match = REFERRERS_PATH.match(url.path)
        if match and request.command == "GET":
            self._answer_referrers(request, match["name"], match["digest"], parse_qs(url.query))
            return
        status, headers, answer = self._forward(request, body)
        manifest = MANIFEST_PATH.match(url.path)
        if manifest and request.command == "PUT" and status == 201 and body:
            self._remember(manifest["name"], body, headers)
        self._send(request, status, headers, answer)

    def _remember(self, name: str, body: bytes, headers: list[tuple[str, str]]) -> None:
        document = json.loads(body)
        subject = document.get("subject")
        if not isinstance(subject, dict):
            return
        digest = dict((k.lower(), v) for k, v in headers)["docker-content-digest"]
        descriptor: dict[str, Any] = {
            "mediaType": document.get("mediaType"),
            "digest": digest,
            "size": len(body),
            "artifactType": document.get("artifactType") or document["config"]["mediaType"],
        }
        if document.get("annotations"):
            descriptor["annotations"] = document["annotations"]
        with self._lock:
            self._referrers.setdefault((name, subject["digest"]), {})[digest] = descriptor

    def _answer_referrers(
        self, request: BaseHTTPRequestHandler, name: str, subject: str, query: dict[str, list[str]]
    ) -> None:
        if self.referrers_status is not None:
            error = {"errors": [{"code": "UNKNOWN", "message": "the fake was told to fail"}]}
            self._send_json(request, self.referrers_status, error)
            return
        if not self._repository_exists(name):
            error = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}
            self._send_json(request, 404, error)
            return
        with self._lock:
            entries = sorted(self._referrers.get((name, subject), {}).values(), key=_digest)
        headers = []
        wanted = query.get("artifactType")
        if wanted and self.honour_filters:
            entries = [e for e in entries if e["artifactType"] in wanted]
            headers.append(("OCI-Filters-Applied", "artifactType"))
        last = (query.get("last") or [""])[0]
        entries = [e for e in entries if e["digest"] > last]
        if self.page_size is not None and len(entries) > self.page_size:
            entries = entries[: self.page_size]
            params = {"last": entries[-1]["digest"]}
            if wanted:
                params["artifactType"] = wanted[0]
            link = f"/v2/{name}/referrers/{subject}?{urlencode(params)}"
            if self.next_link_host:
                link = f"http://{self.next_link_host}{link}"
            headers.append(("Link", f'<{link}>; rel="next"'))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        self._send_json(request, 200, index, OCI_INDEX, headers)

    def _repository_exists(self, name: str) -> bool:
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            connection.request("GET", f"/v2/{name}/tags/list")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    # -- plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _body(request: BaseHTTPRequestHandler) -> bytes | None:
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(request.rfile.readline().strip() or b"0", 16):
                chunks.append(request.rfile.read(size))
                request.rfile.readline()
            request.rfile.readline()
            return b"".join(chunks)
        length = int(request.headers.get("Content-Length") or 0)
        return request.rfile.read(length) if length else None

    def _forward(
        self, request: BaseHTTPRequestHandler, body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        # The Host header goes through unchanged, so the registry's upload Locations name us.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        connection = http.client.HTTPConnection(self.upstream, timeout=120)
        try:
            connection.request(request.command, request.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = b"" if request.command == "HEAD" else response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, answer
        finally:
            connection.close()

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        request.send_response(status)
        for key, value in headers:
            if request.command != "HEAD" and key.lower() == "content-length":
                continue
            request.send_header(key, value)
        if request.command != "HEAD":
            request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)

    def _send_json(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        document: object,
        content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        body = json.dumps(document).encode()
        self._send(request, status, [("Content-Type", content_type), *(headers or [])], body)


def _digest(entry: dict[str, Any]) -> str:
    return str(entry["digest"])


@pytest.fixture
def fake_source(source_registry: RegistryServer) -> Iterator[ReferrersApiFake]:
    fake = ReferrersApiFake(source_registry)
    yield fake
    fake.close()


def images_file(tmp_path: Path, target: str, entries: str) -> Path:
    path = tmp_path / "external-images.yaml"
    path.write_text(f"target: {target}\nimages:\n{entries}", encoding="utf-8")
    return path


def mirror_path(source_host: str, path: str) -> str:
    return f"mirror/{source_host.replace(':', '-')}/{path}"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def tag_of(digest: str) -> str:
    return digest.replace(":", "-")


def index_digests(reference: str) -> list[str]:
    document = json.loads(inspect_raw(reference))
    assert document["mediaType"] == OCI_INDEX
    return [entry["digest"] for entry in document["manifests"]]


def client_for(host: str):  # type: ignore[no-untyped-def]
    return open_client(ConnectionOptions(retries=1), host)


def test_discovery_uses_the_api_and_apply_writes_the_tag_schema(
    fake_source, source_registry, target_registry, tmp_path
) -> None:
    src, dst = fake_source.host, target_registry.host
    image = push_image(src, "team/app", "1.0")
    child = image.children[0]
    # Pushed through the fake, which remembers them; no tag-schema index is written.
    sbom = push_referrer(src, "team/app", image, artifact_type=SPDX, update_tag_schema=False)
    sbom_signature = push_referrer(
        src, "team/app", sbom, artifact_type=COSIGN_ARTIFACT_SIG, update_tag_schema=False
    )
    child_provenance = push_referrer(
        src, "team/app", child, artifact_type=IN_TOTO, seed=2, update_tag_schema=False
    )
    # A decoy only the tag schema knows (pushed to the registry behind the fake): a tool that
    # reads the tag schema although the API answers would copy it.
    decoy = push_referrer(source_registry.host, "team/app", image, seed=9)
    assert tag_of(image.digest) in list_tags(f"{source_registry.host}/team/app")
    images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

    fake_source.requests.clear()
    out = tmp_path / "plan.json"
    code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out))
    assert code == 0, stdout + stderr
    (change,) = Plan.read(out).changes
    target = f"{dst}/{mirror_path(src, 'team/app')}"
    referrers = {s.digest: s for s in change.subchanges if s.kind == "referrer"}
    assert set(referrers) == {sbom.digest, sbom_signature.digest, child_provenance.digest}
    assert decoy.digest not in stdout
    assert referrers[sbom_signature.digest].subject == sbom.digest
    assert referrers[child_provenance.digest].subject == child
    assert referrers[child_provenance.digest].artifact_type == IN_TOTO
    # The API was asked for the image, each child and each referrer; no filter was sent.
    asked = fake_source.referrer_requests()
    for digest in (image.digest, *image.children, sbom.digest, sbom_signature.digest):
        assert f"/v2/team/app/referrers/{digest}" in asked
    assert not any("artifactType" in path for path in asked)
    # ... and the tag schema was not read at the source.
    assert not any(tag_of(image.digest) in r for r in fake_source.manifest_requests())
    indexes = {s.target: s for s in change.subchanges if s.kind == "referrers-index"}
    assert set(indexes) == {f"{target}:{tag_of(d)}" for d in (image.digest, sbom.digest, child)}
    assert {s.action for s in change.subchanges} == {Action.CREATE}

    code, stdout, stderr = run("apply", str(out), "--format", "json")
    assert code == 0, stdout + stderr
    for pushed in (sbom, sbom_signature, child_provenance):
        assert inspect_raw(f"{target}@{pushed.digest}") == pushed.raw
    # The target is a real registry 2.8: the referrers are listed in tag-schema indexes.
    assert index_digests(f"{target}:{tag_of(image.digest)}") == [sbom.digest]
    assert index_digests(f"{target}:{tag_of(sbom.digest)}") == [sbom_signature.digest]
    assert index_digests(f"{target}:{tag_of(child)}") == [child_provenance.digest]
    entry = json.loads(inspect_raw(f"{target}:{tag_of(child)}"))["manifests"][0]
    assert entry["artifactType"] == IN_TOTO
    assert inspect_digest(f"{target}:1.0") == image.digest

    code, stdout, _ = run("plan", "-i", str(images), "--detailed-exitcode")
    assert code == 0, stdout


def test_pages_and_filters(source_registry, tmp_path) -> None:
    fake = ReferrersApiFake(source_registry, page_size=1)
    try:
        image = push_image(fake.host, "team/app", "1.0", seed=3)
        pushed = {
            artifact_type: push_referrer(
                fake.host,
                "team/app",
                image,
                artifact_type=artifact_type,
                seed=seed,
                update_tag_schema=False,
            )
            for seed, artifact_type in enumerate((SPDX, IN_TOTO, COSIGN_ARTIFACT_SIG))
        }
        client = client_for(fake.host)
        repository = parse_reference(f"{fake.host}/team/app").repository

        fake.requests.clear()
        found = client.referrers(repository, image.digest)
        assert found is not None
        assert sorted(d.digest for d in found) == sorted(p.digest for p in pushed.values())
        assert {d.artifact_type for d in found} == set(pushed)
        assert len(fake.referrer_requests()) == 3  # one page each, joined by Link
        assert sum("last=" in path for path in fake.referrer_requests()) == 2

        # The registry filters and says so: its answer is taken as it is.
        only = client.referrers(repository, image.digest, artifact_type=IN_TOTO)
        assert [d.digest for d in only or []] == [pushed[IN_TOTO].digest]
        # A registry that ignores the filter (no OCI-Filters-Applied): imagesync filters.
        fake.honour_filters = False
        fake.requests.clear()
        only = client.referrers(repository, image.digest, artifact_type=SPDX)
        assert [d.digest for d in only or []] == [pushed[SPDX].digest]
        assert len(fake.referrer_requests()) == 3

        # Plan finds every page's referrers too.
        images = images_file(
            tmp_path, f"{source_registry.host}/mirror", f'- source: "{fake.host}/team/app:1.0"\n'
        )
        out = tmp_path / "plan.json"
        code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out))
        assert code == 0, stdout + stderr
        listed = {s.digest for s in Plan.read(out).changes[0].subchanges if s.kind == "referrer"}
        assert listed == {p.digest for p in pushed.values()}

        # A next page on another host is refused: credentials never follow a Link elsewhere.
        fake.next_link_host = "127.0.0.2:9"
        with pytest.raises(RegistryError, match="another host"):
            client_for(fake.host).referrers(repository, image.digest)
    finally:
        fake.close()


def test_target_with_the_api_gets_no_tag_schema_index(
    source_registry, target_registry, tmp_path
) -> None:
    src = source_registry.host
    image = push_image(src, "team/app", "1.0", seed=4)
    sbom = push_referrer(src, "team/app", image, seed=5)  # the source: tag schema only
    target_fake = ReferrersApiFake(target_registry)
    try:
        dst = target_fake.host
        path = mirror_path(src, "team/app")
        images = images_file(tmp_path, f"{dst}/mirror", f'- source: "{src}/team/app:1.0"\n')

        # A new repository: plan cannot tell (the API answers NAME_UNKNOWN), apply can.
        out = tmp_path / "plan.json"
        code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out))
        assert code == 0, stdout + stderr
        (change,) = Plan.read(out).changes
        index = next(s for s in change.subchanges if s.kind == "referrers-index")
        assert index.action is Action.CREATE
        code, stdout, stderr = run("apply", str(out), "--format", "json")
        assert code == 0, stdout + stderr
        results = {s["kind"]: s for s in json.loads(stdout)["images"][0]["signatures"]}
        assert results["referrer"]["outcome"] == "created"
        assert results["referrers-index"]["outcome"] == "skipped"
        assert "referrers API" in results["referrers-index"]["message"]
        assert tag_of(image.digest) not in list_tags(f"{target_registry.host}/{path}")
        client = client_for(dst)
        found = client.referrers(parse_reference(f"{dst}/{path}").repository, image.digest)
        assert [d.digest for d in found or []] == [sbom.digest]

        # The repository exists now: plan sees the API and plans no index.
        code, stdout, stderr = run("plan", "-i", str(images), "-o", str(out))
        assert code == 0, stdout + stderr
        (change,) = Plan.read(out).changes
        index = next(s for s in change.subchanges if s.kind == "referrers-index")
        assert index.action is Action.SKIP
        assert "referrers API" in index.reason
        assert not Plan.read(out).has_changes
    finally:
        target_fake.close()


def test_an_api_error_is_not_taken_for_a_missing_api(
    fake_source, target_registry, tmp_path, monkeypatch
) -> None:
    src = fake_source.host
    push_image(src, "team/app", "1.0", seed=6)
    fake_source.referrers_status = 500
    images = images_file(
        tmp_path, f"{target_registry.host}/mirror", f'- source: "{src}/team/app:1.0"\n'
    )
    # A lookup that fails is a warning on the image, which is planned without its referrers;
    # with --require-signatures it is an error (whether the image is signed is not known).
    code, stdout, _ = run("plan", "-i", str(images), "--retries", "1", "--format", "json")
    assert code == 0
    (change,) = json.loads(stdout)["changes"]
    assert change["action"] == "create" and change["subchanges"] == []
    (warning,) = change["warnings"]
    assert warning.startswith(f"signatures and referrers could not be looked up at {src}")
    assert "referrers" in warning and "500" in warning
    for fmt in ("text", "markdown"):
        code, stdout, _ = run("plan", "-i", str(images), "--retries", "1", "--format", fmt)
        assert code == 0 and "signatures and referrers could not be looked up" in stdout
    code, stdout, _ = run(
        "plan", "-i", str(images), "--retries", "1", "--format", "json", "--require-signatures"
    )
    assert code == 1
    (change,) = json.loads(stdout)["changes"]
    assert change["action"] == "error"
    assert change["reason"].startswith(f"cannot tell whether {src}/team/app:1.0 is signed")
    assert "500" in change["reason"]
    # Not remembered as "no API": once the endpoint works, the same client uses it.
    client = client_for(src)
    repository = parse_reference(f"{src}/team/app").repository
    with pytest.raises(RegistryError):
        client.referrers(repository, "sha256:" + "0" * 64)
    fake_source.referrers_status = None
    assert client.referrers(repository, "sha256:" + "0" * 64) == []
