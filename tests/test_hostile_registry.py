"""A hostile source registry cannot exhaust imagesync's memory or hold a run (issue 14).

What a real registry never does comes from the hostile fake registry on loopback
(``tests/harness/hostile.py``): a tag list, an error body and a token answer of 2 GiB each,
generated as they are sent; answers that arrive one byte a second. Each fails its entry with a
message — the process stays under 150 MB and the run ends within ``--timeout`` — and a slow
answer that is followed by a good one is retried like any other failure. The target is always
a real registry.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from imagesync.cli import main
from imagesync.stores.connection import BASE_DELAY_ENV
from tests.harness.hostile import (
    GIB,
    OCI_MANIFEST,
    Answer,
    FakeImage,
    HostileRegistry,
    lazy_body,
    sha256,
)
from tests.harness.peak import measured
from tests.harness.registry import RegistryServer

PEAK_LIMIT_KIB = 150 * 1024


def images_file(tmp_path: Path, target: RegistryServer, source: str) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(
        f'target: {target.host}/mirror\nimages:\n- source: "{source}"\n  amd64Only: true\n'
    )
    return path


def planned(result: subprocess.CompletedProcess[str], plan: Path) -> dict[str, Any]:
    """The one change of the plan that ``result`` wrote; checks that it ended by itself."""
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    (change,) = json.loads(plan.read_text())["changes"]
    return dict(change)


# -- 2 GiB answers -------------------------------------------------------------------------


def _two_gib_tag_list(fake: HostileRegistry) -> None:
    body = lazy_body(b'{"name":"team/app","tags":["', b'1.0","', 2 * GIB, b'1.0"]}')
    fake.route("GET", r"/tags/list", Answer(200, {"Content-Type": "application/json"}, body))


def _two_gib_error_body(fake: HostileRegistry) -> None:
    image = FakeImage.make()
    body = lazy_body(b'{"errors":[{"code":"UNKNOWN","message":"', b"x", 2 * GIB, b'"}]}')
    fake.route("GET", rf"/manifests/{image.digest}$", Answer(500, {}, body))


def _two_gib_token_answer(fake: HostileRegistry) -> None:
    challenge = f'Bearer realm="http://{fake.host}/token",service="hostile"'
    for method in ("GET", "HEAD"):
        fake.route(method, r"^/v2/", Answer(401, {"WWW-Authenticate": challenge}, b""))
    body = lazy_body(b'{"token":"', b"t", 2 * GIB, b'"}')
    fake.route("GET", r"^/token", Answer(200, {"Content-Type": "application/json"}, body))


# case: (what the fake does, extra options, the entry's action, words of its error or warning).
# A signature lookup that fails is a warning on the entry (design.md §7), an error with
# --require-signatures: the tag list is read for signatures.
TWO_GIB = {
    "a 2 GiB tag list": (_two_gib_tag_list, (), "create", "the answer is more than 16 MiB"),
    "a 2 GiB tag list, signatures required": (
        _two_gib_tag_list,
        ("--require-signatures",),
        "error",
        "the answer is more than 16 MiB",
    ),
    "a 2 GiB error body": (_two_gib_error_body, (), "error", ": 500 "),
    "a 2 GiB token answer": (_two_gib_token_answer, (), "error", "the answer is more than 1 MiB"),
}


@pytest.mark.parametrize("case", list(TWO_GIB))
def test_a_2_gib_answer_fails_cleanly_in_little_memory(
    target_registry: RegistryServer, tmp_path: Path, case: str
) -> None:
    hostile, options, action, expected = TWO_GIB[case]
    before = target_registry.listing()
    plan = tmp_path / "plan.json"
    with HostileRegistry() as fake:
        FakeImage.make().serve(fake)
        hostile(fake)
        images = images_file(tmp_path, target_registry, f"{fake.host}/team/app:1.0")
        result, peak_kib = measured(
            tmp_path, "plan", "-i", str(images), "-o", str(plan), "--retries", "2", *options
        )
    change = planned(result, plan)
    said = change["reason"] if action == "error" else " ".join(change["warnings"])
    print(f"{case}: peak RSS {peak_kib / 1024:.0f} MiB; {said}")
    assert change["action"] == action
    assert result.returncode == (1 if action == "error" else 0)
    assert expected in said
    assert len(said) < 1000
    assert peak_kib < PEAK_LIMIT_KIB, f"peak RSS {peak_kib} KiB"
    assert target_registry.listing() == before


# -- answers a byte a second ---------------------------------------------------------------

TIMEOUT = 2.0


def run_timed(*args: str) -> tuple[Result, float]:
    started = time.monotonic()
    result = CliRunner().invoke(main, list(args), env={BASE_DELAY_ENV: "0.01", "NO_COLOR": "1"})
    return result, time.monotonic() - started


def slowly(data: bytes) -> Iterator[bytes]:
    """A body that sends one byte a second (chunked)."""
    for byte in data:
        time.sleep(1)
        yield bytes([byte])


def _dripped_manifest_head(fake: HostileRegistry, image: FakeImage) -> None:
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": image.digest}
    fake.route("HEAD", r"/manifests/1.0$", Answer(200, headers, None, drip=1.0))


def _dripped_manifest_body(fake: HostileRegistry, image: FakeImage) -> None:
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": image.digest}
    fake.route(
        "GET",
        rf"/manifests/{image.digest}$",
        lambda path: Answer(200, headers, slowly(image.manifest)),
    )


def _dripped_token(fake: HostileRegistry, image: FakeImage) -> None:
    challenge = f'Bearer realm="http://{fake.host}/token",service="hostile"'
    for method in ("GET", "HEAD"):
        fake.route(method, r"^/v2/", Answer(401, {"WWW-Authenticate": challenge}, b""))
    fake.route("GET", r"^/token", Answer(200, {}, b'{"token":"abcdefgh"}', drip=1.0))


DRIPS = {
    "status line and headers": _dripped_manifest_head,
    "a body": _dripped_manifest_body,
    "a token answer": _dripped_token,
}


@pytest.mark.parametrize("case", list(DRIPS))
def test_an_answer_at_a_byte_a_second_ends_within_the_timeout(
    target_registry: RegistryServer, tmp_path: Path, case: str
) -> None:
    before = target_registry.listing()
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        DRIPS[case](fake, image)
        images = images_file(tmp_path, target_registry, f"{fake.host}/team/app:1.0")
        out = tmp_path / "plan.json"
        result, elapsed = run_timed(
            "plan", "-i", str(images), "-o", str(out), "--timeout", str(TIMEOUT), "--retries", "1"
        )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (change,) = json.loads(out.read_text())["changes"]
    assert f"no answer from {fake.host} within 2 s" in change["reason"], change["reason"]
    # The plan's own work (the target, the start) takes a moment on a loaded machine.
    assert elapsed < TIMEOUT + 4, f"{elapsed:.1f} s"
    assert target_registry.listing() == before


def test_a_slow_answer_is_retried_like_any_other_failure(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    answered = threading.Event()
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        good = Answer(
            200,
            {
                "Content-Type": OCI_MANIFEST,
                "Docker-Content-Digest": image.digest,
                "Content-Length": str(len(image.manifest)),
            },
            None,
        )

        def first_slow(path: str) -> Answer:
            if answered.is_set():
                return good
            answered.set()
            return Answer(200, good.headers, None, drip=1.0)

        fake.route("HEAD", r"/manifests/1.0$", first_slow)
        images = images_file(tmp_path, target_registry, f"{fake.host}/team/app:1.0")
        result, _ = run_timed(
            "plan",
            "-i",
            str(images),
            "--timeout",
            str(TIMEOUT),
            "--retries",
            "2",
            "--format",
            "json",
            "--no-signatures",
        )
    assert result.exit_code == 0, result.output
    assert [c["action"] for c in json.loads(result.stdout)["changes"]] == ["create"]
    assert answered.is_set()


def test_a_blob_slower_than_the_floor_fails_its_image_and_nothing_is_tagged(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    """Blobs have no fixed deadline (a big one takes long); they must keep up a throughput
    floor over every window of --timeout seconds. A blob at a byte a second does not."""
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        images = images_file(tmp_path, target_registry, f"{fake.host}/team/app:1.0")
        out = tmp_path / "plan.json"
        result, _ = run_timed("plan", "-i", str(images), "-o", str(out), "--no-signatures")
        assert result.exit_code == 0, result.output
        layer = FakeImage.make().layer
        fake.route("GET", rf"/blobs/{sha256(layer)}$", Answer(200, {}, slowly(layer)))
        result, elapsed = run_timed(
            "apply", str(out), "--timeout", str(TIMEOUT), "--retries", "1", "--format", "json"
        )
    assert result.exit_code == 1, result.output
    (outcome,) = json.loads(result.stdout)["images"]
    assert outcome["outcome"] == "failed"
    assert f"{fake.host} sent" in outcome["message"] and "KiB/s" in outcome["message"]
    assert elapsed < TIMEOUT + 4, f"{elapsed:.1f} s"
    tags = target_registry.session().get(
        f"{target_registry.url}/v2/mirror/{fake.host.replace(':', '-')}/team/app/tags/list",
        timeout=10,
    )
    assert tags.status_code == 404 or not tags.json().get("tags")


# -- a registry that echoes a secret -------------------------------------------------------


@pytest.mark.parametrize("field", ["message", "code"])
def test_a_secret_echoed_across_the_cut_is_redacted_before_it_is_shortened(
    target_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    """Error messages are cut to 500 characters (codes to 100). A registry that echoes a
    credential so that the cut falls inside it must not get the part before the cut printed."""
    secret = "Zq8-hunter2-" + "k" * 12 + "-secret"
    with HostileRegistry() as fake:
        image = FakeImage.make()
        image.serve(fake)
        config = tmp_path / "docker"
        config.mkdir()
        auths = {"auths": {fake.host: {"username": "robot", "password": secret}}}
        (config / "config.json").write_text(json.dumps(auths))
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        cut = 500 if field == "message" else 100
        echoed = "x" * (cut - 10) + secret
        error = {"code": "DENIED", "message": "denied"} | {field: echoed}
        body = json.dumps({"errors": [error]}).encode()
        fake.route("GET", rf"/manifests/{image.digest}$", Answer(400, {}, body))
        images = images_file(tmp_path, target_registry, f"{fake.host}/team/app:1.0")
        summary = tmp_path / "summary.md"
        out = tmp_path / "plan.json"
        result = CliRunner().invoke(
            main,
            ["plan", "-i", str(images), "-o", str(out), "--no-signatures"],
            env={"GITHUB_STEP_SUMMARY": str(summary), "NO_COLOR": "1"},
        )
    assert result.exit_code == 1, result.output
    (change,) = json.loads(out.read_text())["changes"]
    assert "400" in change["reason"]
    for name, text in (
        ("output", result.output),
        ("plan", out.read_text()),
        ("step summary", summary.read_text()),
    ):
        assert secret[:6] not in text, f"part of the secret is in the {name}"
