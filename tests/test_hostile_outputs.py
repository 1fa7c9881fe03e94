"""Hostile inputs on the newer surfaces (issue 30), each tried as an attacker would.

- a registry whose words (an error message and code, an ``artifactType``, a platform variant)
  hold a newline, a carriage return or an escape sequence: they reach no output raw, so
  ``::error title=…::`` from a registry never becomes a GitHub workflow command and OSC 8
  makes no link (the hostile fake of ``tests/harness/hostile.py`` as the source);
- a ``.sig`` tag in the target that holds anything but cosign signatures of its image: plan
  shows the signing as a conflict, and apply, even of a plan edited to sign, moves no tag;
- a plan key that is not UTF-8 and outputs that cannot be written (``-o`` into a missing
  directory or ``/dev/full``, ``GITHUB_STEP_SUMMARY`` a directory or missing): messages that
  name the problem, no traceback, and a summary that cannot be written after a successful
  apply is a warning;
- a shard's apply report edited to hold another shard's entry: refused;
- a source with ``user:password@`` before the host: refused, the password shown nowhere.

Every run is bounded (CliRunner in-process, subprocesses with a timeout), and every output is
checked for tracebacks and raw control characters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagesync.apply.report import ApplyReport, ImageResult, Outcome
from imagesync.cli import main
from imagesync.images.shard import Shard
from imagesync.printable import printable
from imagesync.render.text import report_json
from tests.harness import cosign
from tests.harness.forgery import reseal
from tests.harness.hostile import OCI_INDEX, Answer, FakeImage, HostileRegistry, sha256
from tests.harness.images import connect, cosign_tag, push_image
from tests.harness.plans import generated_plan
from tests.harness.registry import RegistryServer

HOSTILE = "x\n::error title=x::pwned\r\x1b]8;;http://evil\x07link\x1b]8;;\x07\x9b2J"
# A raw control character other than the newline that ends a line, or a line a registry began.
_RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]|^::", re.MULTILINE)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"NO_COLOR": "1", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def assert_inert(*outputs: str) -> None:
    for output in outputs:
        assert "Traceback" not in output, output
        raw = _RAW.search(output)
        assert raw is None, f"raw {raw.group()!r} in {output!r}"


def test_printable_json_is_the_same_json_with_nothing_raw() -> None:
    from imagesync.printable import printable_json

    value = {"a": HOSTILE + "\u202e\u00e9\U000e0001"}
    text = printable_json(json.dumps(value, indent=2, ensure_ascii=False))
    assert json.loads(text) == value
    assert_inert(text)
    assert "\u00e9" in text  # an accent stays readable


# -- a registry's words --------------------------------------------------------------------


def _images_file(tmp_path: Path, target: RegistryServer, source: str) -> Path:
    path = tmp_path / "images.yaml"
    path.write_text(f'target: {target.host}/mirror\nimages:\n- source: "{source}"\n')
    return path


def _serve_index(fake: HostileRegistry, image: FakeImage, tag: str, variant: str) -> None:
    """An index tagged ``tag`` whose one child, ``image``, has ``variant`` as its variant."""
    child = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": image.digest,
        "size": len(image.manifest),
        "platform": {"architecture": "arm", "os": "linux", "variant": variant},
    }
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}).encode()
    headers = {"Content-Type": OCI_INDEX, "Docker-Content-Digest": sha256(raw)}
    for method in ("HEAD", "GET"):
        for reference in (tag, sha256(raw)):
            fake.route(
                method,
                rf"/v2/team/app/manifests/{re.escape(reference)}$",
                Answer(200, headers, raw),
            )


@pytest.mark.registry
@pytest.mark.timeout(240)
def test_a_registrys_words_reach_no_output_raw(
    target_registry: RegistryServer, tmp_path: Path
) -> None:
    with HostileRegistry() as fake:
        image = FakeImage.make()
        document = json.loads(image.manifest)
        document["artifactType"] = "application/x" + HOSTILE
        artifact = json.dumps(document).encode()
        image.serve(fake, artifact)
        image.tag = "2.0"
        image.serve(fake)
        _serve_index(fake, image, "3.0", HOSTILE)
        broken = FakeImage.make(repository="team/broken")
        broken.serve(fake)
        error = json.dumps({"errors": [{"code": HOSTILE, "message": HOSTILE}]}).encode()
        refusal = Answer(400, {"Content-Type": "application/json"}, error)
        fake.route("GET", rf"/v2/team/broken/manifests/({broken.digest}|1\.0)$", refusal)
        path = tmp_path / "images.yaml"
        path.write_text(
            f"target: {target_registry.host}/mirror\nimages:\n"
            + "".join(
                f'- source: "{fake.host}/{s}"\n'
                for s in ("team/app:1.0", "team/app:3.0", "team/broken:1.0")
            )
        )
        plan = tmp_path / "plan.json"
        summary = tmp_path / "summary.md"
        env = {"GITHUB_STEP_SUMMARY": str(summary)}
        outputs = []
        for fmt in ("text", "json"):
            code, out, err = run(
                "plan",
                "-i",
                str(path),
                "-o",
                str(plan),
                "--format",
                fmt,
                "--debug",
                "--no-signatures",
                env=env,
            )
            assert code == 1, out + err  # the broken source is an error
            outputs += [out, err]
        code, shown, err = run("show", str(plan))
        outputs += [shown, err, plan.read_text()]
        code, applied, err = run("apply", str(plan), "--debug", env=env)
        outputs += [applied, err]
        code, as_json, err = run("apply", str(plan), "--format", "json")
        outputs += [as_json, err]
    assert_inert(*outputs)
    json.loads(as_json)
    changes = json.loads(plan.read_text())["changes"]
    assert changes[0]["artifact_types"] == ["application/x" + HOSTILE]  # kept, as sent
    assert printable("application/x" + HOSTILE) in shown  # and shown, escaped
    assert printable(HOSTILE) in shown  # the variant, and the registry's message
    assert "\\n::error title=x::pwned" in outputs[1] + outputs[0]


# -- a .sig tag that holds something else --------------------------------------------------


def _key(tmp_path: Path) -> tuple[Path, Path]:
    private = cosign.new_key()
    key_file, pub_file = tmp_path / "team.key", tmp_path / "team.pub"
    key_file.write_bytes(cosign.encrypted_key_pem(private, b"pass phrase"))
    pub_file.write_bytes(cosign.public_pem(private))
    return key_file, pub_file


@pytest.mark.registry
@pytest.mark.parametrize("held", ["unrelated image", "signature of another image"])
def test_a_sig_tag_that_holds_anything_else_is_a_conflict_and_never_moves(
    registry: RegistryServer, tmp_path: Path, held: str
) -> None:
    pusher = connect(registry)
    image = push_image(pusher, "team/app", "1.0", seed=61)
    images = tmp_path / "images.yaml"
    images.write_text(
        f'target: {registry.host}/mirror\nimages:\n- source: "{registry.host}/team/app:1.0"\n'
    )
    assert run("sync", "-i", str(images), "--no-signatures")[0] == 0
    target = f"mirror/{registry.host.replace(':', '-')}/team/app"
    if held == "unrelated image":
        push_image(pusher, target, cosign_tag(image.digest), seed=62)
    else:
        other = push_image(pusher, "team/other", "1.0", seed=63).digest
        stray = cosign.signature_image([cosign.signed_layer(cosign.new_key(), "x/y", other)])
        for data in stray.blobs.values():
            pusher.put_blob(target, data)
        pusher.put_manifest(target, cosign_tag(image.digest), stray.manifest, stray.media_type)
    key_file, pub_file = _key(tmp_path)
    before = registry.listing()
    plan = tmp_path / "plan.json"
    code, out, err = run("plan", "-i", str(images), "-o", str(plan), "--sign-key", str(pub_file))
    assert code == 1, out + err
    assert re.search(r"^    ! signing \S+\.sig .*: conflict: .*holds", out, re.MULTILINE), out
    assert_inert(out, err)
    env = {"COSIGN_PASSWORD": "pass phrase"}
    code, out, err = run("apply", str(plan), "--sign-key", str(key_file), env=env)
    assert code == 1 and "Traceback" not in out + err
    assert registry.listing() == before
    # An attacker edits the plan to sign anyway (no plan key): apply looks again, and refuses.
    document = json.loads(plan.read_text())
    (sub,) = [s for s in document["changes"][0]["subchanges"] if s["kind"] == "signing"]
    sub["action"], sub["reason"] = "create", "sign with team.pub"
    plan.write_text(json.dumps(reseal(document)))
    code, out, err = run(
        "apply", str(plan), "--sign-key", str(key_file), "--format", "json", env=env
    )
    assert code == 1, out + err
    (result,) = json.loads(out)["images"]
    (signing,) = [s for s in result["signatures"] if s["kind"] == "signing"]
    assert signing["outcome"] == "conflict" and "left untouched" in signing["message"]
    assert registry.listing() == before


# -- a plan key and outputs that cannot be used ---------------------------------------------


def _subprocess(
    args: list[str], env: dict[bytes, bytes], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "imagesync", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_a_plan_key_that_is_not_utf8_is_refused_in_words(tmp_path: Path) -> None:
    env = {k.encode(): v.encode() for k, v in os.environ.items()}
    env[b"IMAGESYNC_PLAN_KEY"] = b"\xff\xfe" * 16
    env[b"PYTHONPATH"] = str(Path(__file__).parent.parent).encode()
    (tmp_path / "images.yaml").write_text("target: oci:/tmp/x\nimages: []\n")
    generated_plan(2).write(tmp_path / "plan.json")
    for args in (["plan", "-i", "images.yaml"], ["apply", "plan.json"]):
        result = _subprocess(args, env, tmp_path)
        err = result.stderr.decode("utf-8", "replace")
        assert result.returncode == 1, err
        assert "IMAGESYNC_PLAN_KEY is not UTF-8 text" in err and "Traceback" not in err


@pytest.mark.registry
@pytest.mark.parametrize("out", ["/nonexistent/dir/plan.json", "/dev/full"])
def test_a_plan_output_that_cannot_be_written_is_a_message(
    registry: RegistryServer, tmp_path: Path, out: str
) -> None:
    push_image(registry.host, "team/app", "1.0", seed=72)
    images = tmp_path / "images.yaml"
    images.write_text(
        f'target: {registry.host}/mirror\nimages:\n- source: "{registry.host}/team/app:1.0"\n'
    )
    before = registry.listing()
    code, stdout, err = run("plan", "-i", str(images), "-o", out)
    assert code == 1, stdout + err
    assert f"Error: cannot write the plan {out}: " in err
    assert_inert(stdout, err)
    assert registry.listing() == before


@pytest.mark.registry
@pytest.mark.parametrize("where", ["a directory", "in a missing directory"])
def test_a_step_summary_that_cannot_be_written_is_a_warning_after_apply(
    registry: RegistryServer, tmp_path: Path, where: str
) -> None:
    push_image(registry.host, "team/app", "1.0", seed=71)
    images = tmp_path / "images.yaml"
    images.write_text(
        f'target: {registry.host}/mirror\nimages:\n- source: "{registry.host}/team/app:1.0"\n'
    )
    summary = str(tmp_path) if where == "a directory" else str(tmp_path / "gone" / "summary.md")
    env = {"GITHUB_STEP_SUMMARY": summary}
    code, out, err = run("plan", "-i", str(images), "-o", str(tmp_path / "plan.json"), env=env)
    assert code == 0 and f"Warning: cannot write the step summary {summary}" in err, out + err
    code, out, err = run("apply", str(tmp_path / "plan.json"), env=env)
    assert code == 0, out + err
    assert "Apply: 1 created" in out and f"Warning: cannot write the step summary {summary}" in err
    assert_inert(out, err)


# -- shards' apply reports --------------------------------------------------------------------


def _report_of(plan: object, shard: Shard) -> ApplyReport:
    from imagesync.plan.document import Plan

    assert isinstance(plan, Plan)
    part = plan.in_shard(shard)
    results = tuple(
        ImageResult(c.entry, c.source_text, c.target, c.digest, Outcome.SKIPPED, "")
        for c in part.changes
    )
    return ApplyReport(results, False, part.target_prefix, part.images_file, shard)


def test_a_shard_report_that_holds_another_shards_entry_is_refused(tmp_path: Path) -> None:
    whole = generated_plan(60)
    zero, one = (_report_of(whole, Shard(k, 2)) for k in range(2))
    document = json.loads(report_json(zero))
    stolen = json.loads(report_json(one))["images"][0]
    document["images"] = sorted([*document["images"], stolen], key=lambda r: r["entry"])
    forged, honest = tmp_path / "zero.json", tmp_path / "one.json"
    forged.write_text(json.dumps(document))
    honest.write_text(report_json(one))
    for paths in ([forged, honest], [forged]):
        code, out, err = run("report", *map(str, paths))
        assert code == 1 and "is in shard 1/2" in err, out + err
        assert out == "" and "Traceback" not in err
    assert run("report", str(tmp_path / "one.json"))[0] in (0, 1)  # the honest one reads


# -- credentials in a source ------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "robot:Hunter2-s3cret-pw@quay.io/team/app:1.0",
        "https://robot:Hunter2-s3cret-pw@ghcr.io/a:1",
        "Hunter2-s3cret-pw@localhost:5000/a:1",
        " robot:Hunter2-s3cret-pw@quay.io/a:1",
    ],
)
def test_a_password_in_a_source_is_refused_and_shown_nowhere(tmp_path: Path, source: str) -> None:
    images = tmp_path / "images.yaml"
    images.write_text(f'target: registry.example.com/m\nimages:\n- source: "{source}"\n')
    for args in (["validate"], ["plan"], ["plan", "--format", "json"]):
        code, out, err = run(*args, "-i", str(images))
        assert code == 1, out + err
        assert "Hunter2" not in out + err and "s3cret" not in out + err
        assert "before the registry host" in err
        assert_inert(out, err)
    code, out, err = run("validate", "-i", str(images), "--target", "u:Hunter2-s3cret-pw@reg.io/x")
    assert code == 1 and "Hunter2" not in out + err
