"""Hostile input: registries that answer nonsense, and plan files and registries configs that
are not what imagesync wrote or documented. Each one gives a clear error entry, a failed image
or a one-line error; never a traceback, never a tag on a bad image.

The real registry validates what it stores and serves it faithfully, so it cannot send an
oversized or malformed manifest, a body that does not hash to its digest, a mislabelled
Content-Type, an upload Location on another host or an endless redirect. Those answers come
from the hostile fake registry (``tests/harness/hostile.py``): a fake source registry that
serves one generated image and then misbehaves in one chosen way, or a fake that stands in
front of the real target registry and passes everything through but the answers under test.
The target that stores the result is always the real registry.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from imagesync.cli import main
from imagesync.plan.document import MAX_PLAN_BYTES, Plan, checksum
from imagesync.stores.connection import BASE_DELAY_ENV
from imagesync.stores.registry.registries import MAX_CONCURRENCY
from tests.harness.hostile import (
    MIB,
    OCI_INDEX,
    OCI_MANIFEST,
    Answer,
    FakeImage,
    HostileRegistry,
    sha256,
)
from tests.harness.registry import RegistryServer

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


# -- running imagesync ---------------------------------------------------------------------


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def clean(result: Result, code: int) -> None:
    """Exited with ``code`` by itself: no exception escaped, no traceback was printed."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE_DELAY_ENV, "0.01")
    monkeypatch.setenv("NO_COLOR", "1")


def images_file(tmp_path: Path, target: str, source: str) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(f'target: {target}/mirror\nimages:\n- source: "{source}"\n  amd64Only: true\n')
    return path


def plan_json(tmp_path: Path, images: Path, *extra: str) -> tuple[Result, dict[str, Any]]:
    out = tmp_path / "plan.json"
    result = run("plan", "-i", str(images), "-o", str(out), "--format", "json", *extra)
    clean(result, result.exit_code)
    return result, json.loads(result.stdout)


def target_tags(target: RegistryServer, fake: HostileRegistry, repository: str) -> list[str]:
    path = f"mirror/{fake.host.replace(':', '-')}/{repository}"
    response = requests.get(f"{target.url}/v2/{path}/tags/list", timeout=10)
    return list(response.json().get("tags") or []) if response.status_code == 200 else []


# -- manifests the source serves -----------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _manifest(**changes: Any) -> bytes:
    image = FakeImage.make()
    document = json.loads(image.manifest)
    document.update(changes)
    return json.dumps(document).encode()


def _bad_layer(**changes: Any) -> bytes:
    image = FakeImage.make()
    document = json.loads(image.manifest)
    document["layers"][0].update(changes)
    return json.dumps(document).encode()


# (manifest bytes served for the tag, Content-Type, what the error entry must say)
BAD_MANIFESTS: dict[str, tuple[bytes, str, str]] = {
    "malformed JSON": (b'{"schemaVersion": 2, "layers": [', OCI_MANIFEST, "not valid JSON"),
    "not a JSON object": (b"[1, 2, 3]", OCI_MANIFEST, "not a JSON object"),
    "nested 100000 deep": (_nested(100_000), OCI_MANIFEST, "nests too deeply"),
    "wrong Content-Type": (
        FakeImage.make().manifest,
        OCI_INDEX,
        f"the registry sent it as {OCI_INDEX}, but it says it is {OCI_MANIFEST}",
    ),
    "HTML page as a manifest": (
        b"<html><body>Welcome to nginx!</body></html>",
        "text/html",
        "not valid JSON",
    ),
    "layers not a list": (_manifest(layers={"a": 1}), OCI_MANIFEST, "has no 'layers' list"),
    "annotations a list": (
        _bad_layer(annotations=["a", "b"]),
        OCI_MANIFEST,
        "annotations are not a JSON object",
    ),
    "absurd blob size": (_bad_layer(size=10**30), OCI_MANIFEST, "size 1000000000000000000000"),
    "negative blob size": (_bad_layer(size=-1), OCI_MANIFEST, "size -1 is not valid"),
    "digest not a digest": (_bad_layer(digest="sha256:xyz"), OCI_MANIFEST, "'sha256:xyz'"),
    "mediaType not text": (_manifest(mediaType=["x"]), OCI_MANIFEST, "mediaType ['x']"),
    "schema 1": (
        json.dumps({"schemaVersion": 1, "name": "team/app", "fsLayers": []}).encode(),
        SCHEMA1,
        "schema 1 manifests are not supported",
    ),
    "over 4 MiB": (
        _manifest(annotations={"padding": "x" * (4 * MIB + 10)}),
        OCI_MANIFEST,
        "more than 4 MiB",
    ),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_a_bad_manifest_is_an_error_entry(
    target_registry: RegistryServer, tmp_path: Path, case: str
) -> None:
    raw, content_type, expected = BAD_MANIFESTS[case]
    with HostileRegistry() as fake:
        good = FakeImage.make()
        good.serve(fake, raw, content_type)
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        result, plan = plan_json(tmp_path, images, "--no-signatures")
    clean(result, 1)
    change = plan["changes"][0]
    assert change["action"] == "error"
    assert expected in change["reason"]
    assert len(change["reason"]) < 600, change["reason"]


BAD_CONFIGS: dict[str, tuple[bytes, str]] = {
    "a JSON list": (b"[1, 2, 3]", "is not a JSON object (it is a list)"),
    "nested 200000 deep": (_nested(200_000), "nests too deeply"),
    "not JSON": (b'{"os": "linux", "architecture": ', "is not valid JSON"),
    "a JSON string": (b'"linux/amd64"', "is not a JSON object (it is a string)"),
    "os and architecture of the wrong type": (
        json.dumps({"os": {"name": "linux"}, "architecture": ["amd64"]}).encode(),
        "but amd64Only allows only linux/amd64",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_an_image_config_of_the_wrong_shape_fails_its_entry_only(
    target_registry: RegistryServer, tmp_path: Path, case: str
) -> None:
    config, expected = BAD_CONFIGS[case]
    with HostileRegistry() as fake:
        FakeImage.make(config, repository="team/bad").serve(fake)
        FakeImage.make().serve(fake)
        images = tmp_path / "images.yaml"
        images.write_text(
            f"target: {target_registry.host}/mirror\nimages:\n"
            f'- source: "{fake.host}/team/bad:1.0"\n  amd64Only: true\n'
            f'- source: "{fake.host}/team/app:1.0"\n  amd64Only: true\n'
        )
        result, plan = plan_json(tmp_path, images, "--no-signatures")
    clean(result, 1)
    bad, good = plan["changes"]
    assert bad["action"] == "error"
    assert expected in bad["reason"], bad["reason"]
    assert len(bad["reason"]) < 600
    assert good["action"] == "create", good


BAD_TOKEN_ANSWERS: dict[str, tuple[bytes, str]] = {
    "a JSON list": (b'["token"]', "is not a JSON object (it is a list)"),
    "nested 100000 deep": (b'{"token": ' + _nested(100_000) + b"}", "nests too deeply"),
    "a token that is a number": (b'{"token": 12345678}', "sent no token"),
    "not JSON": (b"<html>login</html>", "is not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_TOKEN_ANSWERS))
def test_a_token_answer_of_the_wrong_shape_fails_the_entry(
    target_registry: RegistryServer, tmp_path: Path, case: str
) -> None:
    body, expected = BAD_TOKEN_ANSWERS[case]
    with HostileRegistry() as fake:
        FakeImage.make().serve(fake)
        challenge = f'Bearer realm="http://{fake.host}/token",service="hostile"'
        for method in ("GET", "HEAD"):
            fake.route(method, r"^/v2/", Answer(401, {"WWW-Authenticate": challenge}, b""))
        fake.route("GET", r"^/token", Answer(200, {"Content-Type": "application/json"}, body))
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        result, plan = plan_json(tmp_path, images, "--no-signatures")
    clean(result, 1)
    (change,) = plan["changes"]
    assert change["action"] == "error"
    assert expected in change["reason"], change["reason"]
    assert len(change["reason"]) < 600


def test_an_oversized_manifest_without_content_length_is_cut_off(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    """Chunked, no Content-Length: the limit holds while reading, not just on the header."""
    sent: list[int] = []

    def endless(path: str) -> Answer:
        def chunks() -> Iterator[bytes]:
            yield b'{"schemaVersion": 2, "padding": "'
            for _ in range(64):  # 64 MiB if anyone read it all
                sent.append(MIB)
                yield b"x" * MIB

        return Answer(200, {"Content-Type": OCI_MANIFEST}, chunks())

    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        fake.route("GET", rf"/manifests/{image.digest}$", endless)
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        result, plan = plan_json(tmp_path, images, "--no-signatures")
    clean(result, 1)
    assert "more than 4 MiB" in plan["changes"][0]["reason"]
    assert sum(sent) < 16 * MIB


def test_a_manifest_that_does_not_hash_to_its_digest(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        altered = image.manifest.replace(b'"schemaVersion": 2', b'"schemaVersion":  2')
        fake.route("GET", rf"/manifests/{image.digest}$", Answer(200, {}, altered))
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        result, plan = plan_json(tmp_path, images, "--no-signatures")
    clean(result, 1)
    reason = plan["changes"][0]["reason"]
    assert f"hashes to {sha256(altered)}, expected {image.digest}" in reason


def test_endless_redirects_end_with_a_clear_error(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        fake.route(
            "GET",
            rf"/manifests/{image.digest}",
            lambda path: Answer(302, {"Location": path.split("?")[0] + f"?n={len(path)}"}, b""),
        )
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        result, plan = plan_json(tmp_path, images, "--no-signatures")
        redirects = sum(1 for m, p in fake.requests if m == "GET" and "/manifests/sha256" in p)
    clean(result, 1)
    assert "redirected more than 10 times (a redirect loop)" in plan["changes"][0]["reason"]
    assert redirects <= 11


def test_hostile_error_answers_give_short_messages(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    """A 500 with a megabyte of HTML, an error body nested 100000 deep, errors as a dict."""
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        html = b"<html>" + b"x" * MIB + b"</html>"
        fake.route("GET", rf"/manifests/{image.digest}$", Answer(500, {}, html))
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        result, plan = plan_json(tmp_path, images, "--no-signatures", "--retries", "2")
        clean(result, 1)
        reason = plan["changes"][0]["reason"]
        assert "500" in reason and len(reason) < 400, reason
        for body in (_nested(100_000), b'{"errors": {"a": 1}}', b'{"errors": [7]}'):
            fake.route("GET", rf"/manifests/{image.digest}$", Answer(400, {}, body))
            result, plan = plan_json(tmp_path, images, "--no-signatures")
            clean(result, 1)
            assert "400" in plan["changes"][0]["reason"]


def test_a_hostile_tag_list_is_a_warning_or_with_require_signatures_an_error(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    """With signatures on, plan reads the source's tag list: wrong shapes and pages without
    end are a failed lookup, a warning on that entry (planned without signatures), and an
    error of that entry with --require-signatures."""
    answers = [
        Answer(200, {"Content-Type": "application/json"}, b'{"tags": {"a": 1}}'),
        Answer(200, {"Content-Type": "application/json"}, b"[]"),
        Answer(200, {"Content-Type": "application/json"}, b"{not json"),
        Answer(
            200,
            {
                "Content-Type": "application/json",
                "Link": '</v2/team/app/tags/list?n=1>; rel="next"',
            },
            b'{"tags": ["1.0"]}',
        ),
    ]
    expected = [
        "not a list of tags",
        "is not a JSON object (it is a list)",
        "is not valid JSON",
        "pages without end",
    ]
    for answer, words in zip(answers, expected, strict=True):
        with HostileRegistry() as fake:
            FakeImage.make().serve(fake)
            fake.route("GET", r"/tags/list", answer)
            images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
            result, plan = plan_json(tmp_path, images)
            required, required_plan = plan_json(tmp_path, images, "--require-signatures")
        clean(result, 0)
        (change,) = plan["changes"]
        assert change["action"] == "create" and change["subchanges"] == []
        assert any(words in warning for warning in change["warnings"]), change["warnings"]
        clean(required, 1)
        assert words in required_plan["changes"][0]["reason"]


def test_a_next_page_on_another_host_is_refused(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    """Our credentials for the registry must not follow a link to another host."""
    with HostileRegistry() as elsewhere, HostileRegistry() as fake:
        FakeImage.make().serve(fake)
        link = f'<http://{elsewhere.host}/v2/team/app/tags/list?n=1>; rel="next"'
        headers = {"Content-Type": "application/json", "Link": link}
        fake.route("GET", r"/tags/list", Answer(200, headers, b'{"tags": ["1.0"]}'))
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        result, plan = plan_json(tmp_path, images)
        assert elsewhere.requests == []
    # A failed signature lookup: a warning on the entry (an error with --require-signatures).
    clean(result, 0)
    (warning,) = plan["changes"][0]["warnings"]
    assert "sent a URL on another host" in warning


# -- blobs the source serves, uploads the target answers -----------------------------------

BAD_BLOBS: dict[str, tuple[Callable[[bytes], Answer], str]] = {
    "body does not hash to its digest": (
        lambda layer: Answer(200, {}, bytes([layer[0] ^ 0xFF]) + layer[1:]),
        "arrived with digest",
    ),
    "body longer than its size": (
        lambda layer: Answer(200, {}, iter([layer, b"more"])),
        "is longer than its",
    ),
    "body shorter than its size": (
        lambda layer: Answer(200, {}, iter([layer[:100]])),
        f"ended after 100 of {len(FakeImage.make().layer)} bytes",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BLOBS))
def test_a_bad_blob_fails_the_image_and_nothing_is_tagged(
    target_registry: RegistryServer, tmp_path: Path, case: str
) -> None:
    answer, expected = BAD_BLOBS[case]
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        images = images_file(tmp_path, target_registry.host, f"{fake.host}/team/app:1.0")
        _, plan = plan_json(tmp_path, images, "--no-signatures")
        assert plan["changes"][0]["action"] == "create", plan
        fake.route("GET", rf"/blobs/{sha256(image.layer)}$", lambda path: answer(image.layer))
        applied = run("apply", str(tmp_path / "plan.json"), "--format", "json", "--retries", "2")
        clean(applied, 1)
        outcome = json.loads(applied.stdout)["images"][0]
        assert outcome["outcome"] == "failed"
        assert expected in outcome["message"]
        assert target_tags(target_registry, fake, "team/app") == []
        if case != "body longer than its size":
            # (Longer: the first `size` bytes are the real blob, and may be stored.)
            blob = f"mirror/{fake.host.replace(':', '-')}/team/app/blobs/{sha256(image.layer)}"
            url = f"{target_registry.url}/v2/{blob}"
            assert requests.head(url, timeout=10).status_code == 404


TARGET_ANSWERS: dict[str, tuple[str, str, Callable[[str], Answer], str]] = {
    "upload Location on another host": (
        "POST",
        r"/blobs/uploads/$",
        lambda path: Answer(202, {"Location": "http://elsewhere.invalid:9/v2/upload"}, b""),
        "sent an upload location on another host or scheme: http://elsewhere.invalid:9",
    ),
    "upload Location that is not a URL": (
        "POST",
        r"/blobs/uploads/$",
        lambda path: Answer(202, {"Location": "http://[::1"}, b""),
        "sent an upload location on another host or scheme",
    ),
    "upload redirected": (
        "PUT",
        r"/blobs/uploads/.",
        lambda path: Answer(307, {"Location": path}, b""),
        "answered 307, a redirect to",
    ),
    "manifest PUT redirected": (
        "PUT",
        r"/manifests/",
        lambda path: Answer(308, {"Location": path}, b""),
        "answered 308, a redirect to",
    ),
}


@pytest.mark.parametrize("case", list(TARGET_ANSWERS))
def test_a_hostile_target_fails_the_image_and_nothing_is_tagged(
    target_registry: RegistryServer, tmp_path: Path, case: str
) -> None:
    method, pattern, answer, expected = TARGET_ANSWERS[case]
    with HostileRegistry() as source, HostileRegistry(target_registry.host) as target:
        image = FakeImage.make()
        image.serve(source)
        images = images_file(tmp_path, target.host, f"{source.host}/team/app:1.0")
        _, plan = plan_json(tmp_path, images, "--no-signatures")
        assert plan["changes"][0]["action"] == "create", plan
        target.route(method, pattern, answer)
        applied = run("apply", str(tmp_path / "plan.json"), "--format", "json")
        clean(applied, 1)
        outcome = json.loads(applied.stdout)["images"][0]
        assert outcome["outcome"] == "failed"
        assert expected in outcome["message"], outcome["message"]
        # Nothing was sent after the refused answer to where it pointed.
        assert not any("elsewhere" in p for _, p in target.requests)
        assert target_tags(target_registry, source, "team/app") == []


# -- plan files ----------------------------------------------------------------------------


@pytest.fixture
def valid_plan(tmp_path: Path) -> dict[str, Any]:
    """A plan document as plan writes it (for an unreachable target: it is never applied)."""
    images = tmp_path / "images.yaml"
    images.write_text('target: 127.0.0.1:9/mirror\nimages:\n- source: "127.0.0.1:9/app:1.0"\n')
    digest = "sha256:" + "a" * 64
    document: dict[str, Any] = {
        "format_version": 1,
        "tool": {"name": "imagesync", "version": "0.1.0"},
        "created": "2026-01-01T00:00:00Z",
        "target_prefix": "127.0.0.1:9/mirror",
        "images_file": {"path": str(images), "sha256": "b" * 64},
        "summary": {"create": 1, "skip": 0, "conflict": 0, "error": 0},
        "warnings": [],
        "changes": [
            {
                "entry": 1,
                "line": 3,
                "source_text": "127.0.0.1:9/app:1.0",
                "source": "127.0.0.1:9/app:1.0",
                "target": "127.0.0.1:9/mirror/127.0.0.1-9/app:1.0",
                "action": "create",
                "reason": "not in the target",
                "digest": digest,
                "media_type": OCI_INDEX,
                "platforms": ["linux/amd64"],
                "target_digest": None,
                "warnings": [],
                "blobs_to_transfer": 1,
                "bytes_to_transfer": 10,
                "subchanges": [],
            }
        ],
    }
    document["checksum"] = checksum(document)
    Plan.from_document(document)  # the baseline is a plan imagesync accepts
    return document


def _resealed(document: dict[str, Any]) -> dict[str, Any]:
    """Edited, with a fresh checksum: what someone forging a plan would do."""
    document = json.loads(json.dumps(document))
    document["checksum"] = checksum(document)
    return document


def _edit(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(document: dict[str, Any]) -> dict[str, Any]:
        node: Any = document
        keys = path.split("/")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return _resealed(document)

    return edit


HOSTILE_PLANS: dict[str, Callable[[dict[str, Any]], bytes | dict[str, Any]]] = {
    "empty file": lambda d: b"",
    "not JSON": lambda d: b"{plan",
    "not UTF-8": lambda d: b"\xff\xfe{}",
    "a JSON list": lambda d: b"[]",
    "nested 100000 deep": lambda d: _nested(100_000),
    "a number with 5000 digits": lambda d: b"1" * 5000,
    "format_version as text": _edit("format_version", "1"),
    "changes as a mapping": _edit("changes", {"a": 1}),
    "entry as text": _edit("changes/0/entry", "one"),
    "a 1 MiB string": _edit("tool/version", "v" * MIB),
    "deep nesting inside": _edit("warnings", json.loads(_nested(500))),
    "an unknown key": lambda d: _resealed({**d, "extra": True}),
    "checksum mismatch": lambda d: {**d, "created": "2027-01-01T00:00:00Z"},
    "target prefix not a name": _edit("target_prefix", "UPPER CASE/x"),
    "source not a reference": _edit("changes/0/source", "!!!"),
    "target outside the prefix": _edit("changes/0/target", "127.0.0.1:9/elsewhere/app:1.0"),
    "NaN count": lambda d: (
        json.dumps(d).replace('"blobs_to_transfer": 1', '"blobs_to_transfer": NaN').encode()
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_PLANS))
def test_a_hostile_plan_is_refused_before_any_request(
    tmp_path: Path, valid_plan: dict[str, Any], case: str
) -> None:
    content = HOSTILE_PLANS[case](json.loads(json.dumps(valid_plan)))
    path = tmp_path / "plan.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    commands = [["apply", str(path)], ["show", str(path)]]
    if case == "target outside the prefix":
        commands = commands[:1]  # a well-formed plan: show renders it, apply refuses it
    for command in commands:
        result = run(*command)
        clean(result, 1)
        assert "re-run plan" in result.stderr or "cannot read plan" in result.stderr
        assert len(result.stderr) < 1000, result.stderr[:2000]
        # 127.0.0.1:9 (discard) is never reached: no "cannot reach" either.
        assert "cannot reach" not in result.output


def test_a_plan_too_large_to_be_a_plan_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    with path.open("wb") as sparse:
        sparse.truncate(MAX_PLAN_BYTES + 1)
    result = run("apply", str(path))
    clean(result, 1)
    assert "too large to be a plan" in result.stderr


def test_a_plan_that_is_a_directory(tmp_path: Path) -> None:
    # show takes a directory of shard plans; one with no plan in it is refused, with a message.
    (tmp_path / "plan.json").mkdir()
    result = run("show", str(tmp_path / "plan.json"))
    clean(result, 1)
    assert "is a directory with no .json file in it" in result.stderr
    result = run("apply", str(tmp_path / "plan.json"))
    clean(result, 2)  # apply takes one plan file: click refuses a directory, a usage error


# -- registries configs --------------------------------------------------------------------


HOSTILE_CONFIGS: dict[str, tuple[bytes, str]] = {
    "not YAML": (b"registries: [", "not valid YAML"),
    "not UTF-8": (b"registries:\n  \xff\xfe: {}\n", "not UTF-8"),
    "a list": (b"- a\n- b\n", "a mapping with one key, 'registries'"),
    "an unknown top-level key": (
        b"registry: {}\n",
        "unknown key 'registry': did you mean registries?",
    ),
    "registries as a list": (b"registries: [a, b]\n", "must map registry hosts to settings"),
    "a number as host": (b"registries:\n  5000: {}\n", "5000 is not a registry host"),
    "a URL as host": (b"registries:\n  https://reg.io/v2: {}\n", "is not a registry host"),
    "settings as text": (b"registries:\n  reg.io: fast\n", "must be a mapping of settings"),
    "an unknown setting": (
        b"registries:\n  reg.io: {mirror: [a]}\n",
        "unknown key 'mirror': did you mean mirrors?",
    ),
    "mirrors as text": (b"registries:\n  reg.io: {mirrors: m.io}\n", "mirrors must be a list"),
    "a mirror with a scheme": (
        b"registries:\n  reg.io: {mirrors: ['https://m.io']}\n",
        "mirrors must be a list of registry hosts",
    ),
    "insecure as text": (b"registries:\n  reg.io: {insecure: 'yes'}\n", "true or false"),
    "max_concurrency 0": (b"registries:\n  reg.io: {max_concurrency: 0}\n", "from 1 to"),
    "max_concurrency huge": (
        b"registries:\n  reg.io: {max_concurrency: 100000000000}\n",
        f"from 1 to {MAX_CONCURRENCY}",
    ),
    "max_concurrency true": (b"registries:\n  reg.io: {max_concurrency: true}\n", "from 1 to"),
    "ca_file missing": (b"registries:\n  reg.io: {ca_file: nope.pem}\n", "does not exist"),
    "ca_file a number": (b"registries:\n  reg.io: {ca_file: 7}\n", "ca_file must be a path"),
    "ca_file with a NUL": (b'registries:\n  reg.io: {ca_file: "a\\0b"}\n', "must be a path"),
    "nested 10000 deep": (b"registries: " + b"[" * 10_000 + b"]" * 10_000, "registries"),
    "a tag YAML cannot build": (b"registries: !!python/object:os.system {}\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", list(HOSTILE_CONFIGS))
def test_a_hostile_registries_config_is_a_one_line_error(tmp_path: Path, case: str) -> None:
    content, expected = HOSTILE_CONFIGS[case]
    config = tmp_path / "registries.yaml"
    config.write_bytes(content)
    images = tmp_path / "images.yaml"
    images.write_text('target: 127.0.0.1:9/mirror\nimages:\n- source: "127.0.0.1:9/app:1.0"\n')
    result = run("plan", "-i", str(images), "--registries-config", str(config))
    clean(result, 1)
    assert result.stderr.startswith((f"Error: {config}", f"{config}:")), result.stderr
    assert expected in result.stderr
    assert len(result.stderr) < 1000
    assert "cannot reach" not in result.output


def test_a_huge_registries_config_is_not_read(tmp_path: Path) -> None:
    config = tmp_path / "registries.yaml"
    config.write_bytes(b"registries:\n" + b"  # padding\n" * 200_000)
    images = tmp_path / "images.yaml"
    images.write_text('target: 127.0.0.1:9/mirror\nimages:\n- source: "127.0.0.1:9/app:1.0"\n')
    result = run("plan", "-i", str(images), "--registries-config", str(config))
    clean(result, 1)
    assert "larger than" in result.stderr


# -- images files (the loader is imagesfile.py; see also test_properties.py) ---------------


def _alias_bomb(levels: int) -> str:
    lines = ["target: reg.io/x", 'a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, levels):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines += ["images:", '- source: "busybox:1.36"', f"  tag: *a{levels - 1}"]
    return "\n".join(lines) + "\n"


def _deep_aliases() -> str:
    """Each anchor 30 levels deep, one alias in the next: shallow as written, deep expanded."""
    nested = ["target: reg.io/x", "b0: &b0 x"]
    for level in range(1, 3):
        nested.append(f"b{level}: &b{level} " + "[" * 30 + f"*b{level - 1}" + "]" * 30)
    nested += ["images:", '- source: "busybox:1.36"', "  tag: *b2"]
    return "\n".join(nested) + "\n"


_ENTRY = 'target: reg.io/x\nimages:\n- source: "busybox:1.36"\n'

# content, the line every problem is on, what the message says.
HOSTILE_IMAGES_FILES: dict[str, tuple[bytes, int, str]] = {
    "nested 5000 deep": (
        b"target: reg.io/x\nimages: " + _nested(5000) + b"\n",
        2,
        "nests more than 32 levels deep",
    ),
    # Six levels (9**6 values) cross the limit where nine would, and without the limit they
    # make this test fail in seconds where nine would exhaust the memory.
    "an alias bomb": (_alias_bomb(6).encode(), 6, "aliases (*name) repeat more than 10000"),
    "aliases that nest deeply": (_deep_aliases().encode(), 3, "nests more than 32 levels"),
    "a \\U escape beyond U+10FFFF": (
        b'target: reg.io/x\nimages:\n- source: "\\U00110000"\n',
        3,
        "escape beyond U+10FFFF",
    ),
    "a control character": (
        b"target: reg.io/x\nimages:\n- source: busybox\x1f\n",
        3,
        "character U+001F is not allowed",
    ),
    # Text fields take any number or date as written; a boolean field cannot.
    "a date that is none": (_ENTRY.encode() + b"  amd64Only: 2001-13-45\n", 4, "as a date"),
    "a number of 900000 digits": (
        _ENTRY.encode() + b"  amd64Only: " + b"1" * 900_000 + b"\n",
        4,
        "cannot read '1111",
    ),
    "a tag of 900000 digits": (
        _ENTRY.encode() + b"  tag: " + b"1" * 900_000 + b"\n",
        4,
        "tag '1111",
    ),
    "a tag of 900000 characters": (
        _ENTRY.encode() + b"  tag: " + b"t" * 900_000 + b"\n",
        4,
        "tag 'tttt",
    ),
    "a key of 900000 characters": (
        _ENTRY.encode() + b"  ? " + b"k" * 900_000 + b"\n  : 1\n",
        4,
        "unknown key 'kkkk",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_IMAGES_FILES))
def test_a_hostile_images_file_is_a_located_short_error(tmp_path: Path, case: str) -> None:
    content, line, expected = HOSTILE_IMAGES_FILES[case]
    path = tmp_path / "images.yaml"
    path.write_bytes(content)
    result = run("validate", "-i", str(path))
    clean(result, 1)
    problems = result.stderr.splitlines()[:-1]  # the last line is the summary
    assert problems, result.stderr
    for problem in problems:
        assert problem.startswith(f"{path}:{line}: "), problem
        assert "(fix: " in problem, problem
    assert expected in result.stderr, result.stderr
    # Values are quoted, not copied: a megabyte in the file is not a megabyte on the screen.
    assert len(result.stderr) < 1000, result.stderr[:2000]


def test_an_images_file_too_large_to_be_one_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    with path.open("wb") as padded:
        padded.write(_ENTRY.encode())
        padded.truncate(50 * MIB)  # zeros: read, they would be a control character error
    result = run("validate", "-i", str(path))
    clean(result, 1)
    assert result.stderr.startswith(f"{path}: the file is larger than 1 MiB"), result.stderr
    assert "(fix: check the -i/--images-file path" in result.stderr


def test_an_images_file_just_under_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_bytes(_ENTRY.encode() + b"# padding\n" * (MIB // 10 - 10))
    assert path.stat().st_size <= MIB
    result = run("validate", "-i", str(path))
    clean(result, 0)


# -- inputs that are not files: /dev/zero never ends, a FIFO waits for a writer -------------


def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


def _symlink_to_zero(tmp_path: Path) -> str:
    link = tmp_path / "plan.json"
    link.symlink_to("/dev/zero")
    return str(link)


_IMAGES = 'target: 127.0.0.1:9/mirror\nimages:\n- source: "127.0.0.1:9/app:1.0"\n'

# (command with {input} where the input goes, which input)
NOT_FILES: dict[str, list[str]] = {
    "apply /dev/zero": ["apply", "{zero}"],
    "show /dev/zero": ["show", "{zero}"],
    "diff /dev/zero /dev/zero": ["diff", "{zero}", "{zero}"],
    "apply a FIFO": ["apply", "{fifo}"],
    "show a symlink to /dev/zero": ["show", "{link}"],
    "validate -i /dev/zero": ["validate", "-i", "{zero}"],
    "plan -i a FIFO": ["plan", "-i", "{fifo}"],
    "plan --registries-config /dev/zero": [
        "plan",
        "-i",
        "{images}",
        "--registries-config",
        "{zero}",
    ],
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(NOT_FILES))
def test_an_input_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, case: str) -> None:
    images = tmp_path / "images.yaml"
    images.write_text(_IMAGES)
    names = {
        "zero": "/dev/zero",
        "fifo": _fifo(tmp_path),
        "link": _symlink_to_zero(tmp_path),
        "images": str(images),
    }
    result = run(*(part.format(**names) for part in NOT_FILES[case]))
    clean(result, 1)
    assert "not a regular file" in result.stderr, result.stderr
    assert len(result.stderr) < 1000
    assert "cannot reach" not in result.output


def _docker_config(document: Any) -> bytes:
    return json.dumps(document).encode()


SECRET = "s3cr3t-Pa55word-in-the-config"
HOSTILE_DOCKER_CONFIGS: dict[str, tuple[bytes, str]] = {
    "auth not base64": (
        _docker_config({"auths": {"reg.io": {"auth": f"!!{SECRET}!!"}}}),
        'auths."reg.io".auth is not base64 of user:password',
    ),
    "auth base64 without a colon": (
        _docker_config({"auths": {"reg.io": {"auth": base64.b64encode(SECRET.encode()).decode()}}}),
        'auths."reg.io".auth is not base64 of user:password',
    ),
    "auth a number": (
        _docker_config({"auths": {"reg.io": {"auth": 12345}}}),
        'auths."reg.io".auth must be text',
    ),
    "auths a list": (_docker_config({"auths": ["reg.io"]}), "auths must be a JSON object"),
    "credHelpers a list": (
        _docker_config({"credHelpers": ["gcloud"]}),
        "credHelpers must be a JSON object",
    ),
    "credHelpers value a number": (
        _docker_config({"credHelpers": {"reg.io": 7}}),
        'credHelpers."reg.io" must be text',
    ),
    "credsStore a mapping": (_docker_config({"credsStore": {"a": 1}}), "credsStore must be text"),
    "an auths entry a string": (
        _docker_config({"auths": {"reg.io": SECRET}}),
        'auths."reg.io" must be a JSON object',
    ),
    "numeric user": (
        _docker_config({"auths": {"reg.io": {"username": 42, "password": SECRET}}}),
        'auths."reg.io".username must be text',
    ),
    "numeric password": (
        _docker_config({"auths": {"reg.io": {"username": "u", "password": 1234567}}}),
        'auths."reg.io".password must be text',
    ),
    "identitytoken a list": (
        _docker_config({"auths": {"reg.io": {"identitytoken": [SECRET]}}}),
        'auths."reg.io".identitytoken must be text',
    ),
    "nested 100000 deep": (b'{"auths": ' + _nested(100_000) + b"}", "nests too deeply"),
    "a JSON list": (b"[1]", "is not a JSON object"),
    "not JSON": (f'{{"auths": {{"reg.io": {{"auth": "{SECRET}"'.encode(), "is not valid JSON"),
}


@pytest.mark.parametrize("case", list(HOSTILE_DOCKER_CONFIGS))
def test_a_hostile_docker_config_is_a_located_error_that_shows_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    content, expected = HOSTILE_DOCKER_CONFIGS[case]
    (tmp_path / "docker").mkdir()
    config = tmp_path / "docker" / "config.json"
    config.write_bytes(content)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    images = tmp_path / "images.yaml"
    images.write_text(_IMAGES)
    result = run("plan", "-i", str(images))
    clean(result, 1)
    assert result.stderr.startswith(f"Error: docker config {config}"), result.stderr
    assert expected in result.stderr, result.stderr
    assert SECRET not in result.output
    assert base64.b64encode(SECRET.encode()).decode() not in result.output
    assert len(result.stderr) < 1000
    assert "cannot reach" not in result.output
