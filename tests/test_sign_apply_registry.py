"""Signing what lands and verifying what comes in, end to end through the CLI (issue 17).

Against the real distribution registry. Debian's skopeo is built with sigstore disabled, so
the checker of signatures is ``tests/harness/cosign.py``: a verifier and a signer written from
cosign's formats with ``cryptography``, apart from imagesync's code. skopeo reads the bytes the
registry serves.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from imagesync.cli import main
from imagesync.plan.document import Action, Plan
from tests.harness import cosign
from tests.harness.faultproxy import FaultProxy
from tests.harness.forgery import reseal
from tests.harness.images import Pusher, connect, cosign_tag, push_image
from tests.harness.layouts import layout_problems, tagged_entries
from tests.harness.mirrorworld import PROXY_VARIABLES, OnlyLoopback
from tests.harness.registry import RegistryServer
from tests.harness.skopeo import inspect_raw

pytestmark = pytest.mark.registry

PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True)
class KeyPair:
    private: ec.EllipticCurvePrivateKey
    key_file: Path  # cosign's encrypted format
    pub_file: Path

    @property
    def public_pem(self) -> bytes:
        return self.pub_file.read_bytes()


def key_pair(folder: Path, name: str, pem_type: str = cosign.SIGSTORE_PEM_TYPE) -> KeyPair:
    private = cosign.new_key()
    key_file, pub_file = folder / f"{name}.key", folder / f"{name}.pub"
    key_file.write_bytes(cosign.encrypted_key_pem(private, PASSPHRASE.encode(), pem_type=pem_type))
    pub_file.write_bytes(cosign.public_pem(private))
    return KeyPair(private, key_file, pub_file)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def with_passphrase(passphrase: str = PASSPHRASE) -> dict[str, str]:
    return {"COSIGN_PASSWORD": passphrase}


def images_file(tmp_path: Path, target: str, sources: list[str]) -> Path:
    path = tmp_path / "external-images.yaml"
    lines = "".join(f'- source: "{source}"\n' for source in sources)
    path.write_text(f"target: {target}\nimages:\n{lines}", encoding="utf-8")
    return path


def target_repository(registry: RegistryServer, path: str) -> str:
    return f"mirror/{registry.host.replace(':', '-')}/{path}"


def read_sig(pusher: Pusher, repository: str, digest: str) -> tuple[bytes, dict[str, bytes]]:
    """The ``.sig`` manifest of ``digest`` as the registry serves it, and its blobs."""
    fetched = pusher.fetch_manifest(repository, cosign_tag(digest))
    document = json.loads(fetched.raw)
    digests = [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]
    return fetched.raw, {d: pusher.get_blob(repository, d) for d in digests}


def push_signature_image(pusher: Pusher, repository: str, digest: str, image: object) -> None:
    assert isinstance(image, cosign.SignatureImage)
    for data in image.blobs.values():
        pusher.put_blob(repository, data)
    pusher.put_manifest(repository, cosign_tag(digest), image.manifest, image.media_type)


def signing_subchanges(plan: Plan) -> list[tuple[str, Action]]:
    return [
        (sub.subject or "", sub.action)
        for change in plan.changes
        for sub in change.subchanges
        if sub.kind == "signing"
    ]


def test_apply_signs_what_lands_keeps_upstream_layers_and_signs_once(
    registry: RegistryServer, tmp_path: Path
) -> None:
    pusher = connect(registry)
    image = push_image(pusher, "team/app", "1.0", seed=11)
    team, upstream, other = (key_pair(tmp_path, n) for n in ("team", "upstream", "other"))
    theirs = cosign.signature_image(
        [cosign.signed_layer(upstream.private, f"{registry.host}/team/app", image.digest)],
        indent=2,  # not how imagesync writes JSON: its bytes must survive anyway
    )
    push_signature_image(pusher, "team/app", image.digest, theirs)
    images = images_file(tmp_path, f"{registry.host}/mirror", [f"{registry.host}/team/app:1.0"])
    target = target_repository(registry, "team/app")

    # The pull request's plan job has the public key only, and no passphrase.
    code, out, err = run("plan", "-i", str(images), "-o", str(tmp_path / "plan.json"),
                         "--sign-key", str(team.pub_file))  # fmt: skip
    assert code == 0, out + err
    plan = Plan.read(tmp_path / "plan.json")
    assert signing_subchanges(plan) == [(image.digest, Action.CREATE)]
    assert plan.signing is not None and plan.signing.key_file == str(team.pub_file)
    assert "signing" in out

    code, out, err = run("apply", str(tmp_path / "plan.json"), "--sign-key", str(team.key_file),
                         "--format", "json", env=with_passphrase())  # fmt: skip
    assert code == 0, out + err
    (result,) = json.loads(out)["images"]
    assert [(s["kind"], s["outcome"]) for s in result["signatures"]] == [
        ("signature", "created"),
        ("signing", "created"),
    ]

    served, blobs = read_sig(pusher, target, image.digest)
    assert inspect_raw(f"{registry.host}/{target}:{cosign_tag(image.digest)}") == served
    [ours] = cosign.verify(served, blobs, team.public_pem, image.digest)
    [kept] = cosign.verify(served, blobs, upstream.public_pem, image.digest)
    with pytest.raises(cosign.NotVerified):
        cosign.verify(served, blobs, other.public_pem, image.digest)
    # Upstream's layer descriptor, byte for byte, and its payload blob, in the same place.
    upstream_layers = theirs.manifest.decode().split('"layers": [')[1].rsplit("]", 1)[0].rstrip()
    assert upstream_layers in served.decode()
    assert kept == json.loads(theirs.manifest)["layers"][0]["digest"]
    assert json.loads(served)["layers"][1]["digest"] == ours
    # The index is signed, not its children: what a cluster pulls by tag.
    for child in image.children:
        assert not pusher.manifest_exists(target, cosign_tag(child))

    # A re-run adds none: the same plan applied again, or a new plan, writes nothing.
    code, out, err = run("apply", str(tmp_path / "plan.json"), "--sign-key", str(team.key_file),
                         "--format", "json", env=with_passphrase())  # fmt: skip
    assert code == 0, out + err
    (result,) = json.loads(out)["images"]
    assert [s["outcome"] for s in result["signatures"]] == ["skipped", "skipped"], result
    assert read_sig(pusher, target, image.digest)[0] == served

    code, out, err = run("plan", "-i", str(images), "-o", str(tmp_path / "again.json"),
                         "--sign-key", str(team.key_file), env=with_passphrase())  # fmt: skip
    assert code == 0, out + err
    again = Plan.read(tmp_path / "again.json")
    assert signing_subchanges(again) == [(image.digest, Action.SKIP)]
    assert {s.action for c in again.changes for s in c.subchanges} == {Action.SKIP}
    code, out, err = run("apply", str(tmp_path / "again.json"), "--sign-key", str(team.key_file),
                         env=with_passphrase())  # fmt: skip
    assert code == 0, out + err
    assert read_sig(pusher, target, image.digest)[0] == served
    assert len(json.loads(served)["layers"]) == 2


def test_sync_sign_children_signs_the_index_and_each_platform_manifest(
    registry: RegistryServer, tmp_path: Path
) -> None:
    pusher = connect(registry)
    image = push_image(pusher, "team/app", "2.0", seed=12)
    team = key_pair(tmp_path, "team", cosign.COSIGN_PEM_TYPE)  # cosign 1's PEM type
    images = images_file(tmp_path, f"{registry.host}/mirror", [f"{registry.host}/team/app:2.0"])
    code, out, err = run("sync", "-i", str(images), "--sign-key", str(team.key_file),
                         "--sign-children", env=with_passphrase())  # fmt: skip
    assert code == 0, out + err
    target = target_repository(registry, "team/app")
    for digest in (image.digest, *image.children):
        served, blobs = read_sig(pusher, target, digest)
        [layer] = json.loads(served)["layers"]
        assert cosign.verify(served, blobs, team.public_pem, digest) == [layer["digest"]]
        claim = json.loads(blobs[layer["digest"]])["critical"]
        assert claim["identity"]["docker-reference"] == f"{registry.host}/{target}"


def test_a_wrong_passphrase_is_an_error_before_any_request(
    registry: RegistryServer, tmp_path: Path
) -> None:
    team = key_pair(tmp_path, "team")
    with FaultProxy(registry.host) as proxy:
        images = images_file(tmp_path, f"{proxy.host}/mirror", [f"{proxy.host}/team/app:1.0"])
        for command in (["sync"], ["apply"], ["plan"]):
            code, out, err = run(*command, "-i", str(images), "--sign-key", str(team.key_file),
                                 env=with_passphrase("Tr0ub4dor&3"))  # fmt: skip
            assert code == 1, out + err
            assert "passphrase" in err and str(team.key_file) in err and "Traceback" not in err
            assert "Tr0ub4dor" not in out + err
        assert proxy.requests == [] and proxy.received == []


def test_apply_refuses_a_plan_made_for_another_key(
    registry: RegistryServer, tmp_path: Path
) -> None:
    push_image(registry.host, "team/app", "1.0", seed=13)
    team, other = key_pair(tmp_path, "team"), key_pair(tmp_path, "other")
    with FaultProxy(registry.host) as proxy:
        images = images_file(tmp_path, f"{proxy.host}/mirror", [f"{proxy.host}/team/app:1.0"])
        plan_file = str(tmp_path / "plan.json")
        code, out, err = run("plan", "-i", str(images), "-o", plan_file,
                             "--sign-key", str(team.pub_file))  # fmt: skip
        assert code == 0, out + err
        proxy.requests.clear()
        proxy.received.clear()
        code, out, err = run("apply", plan_file, "--sign-key", str(other.key_file),
                             env=with_passphrase())  # fmt: skip
        assert code == 1 and "not with other.key" in err.replace(str(tmp_path) + "/", ""), err
        code, out, err = run("apply", plan_file)
        assert code == 1 and "given no key" in err, err
        code, out, err = run("apply", plan_file, "--sign-key", str(team.key_file),
                             env=with_passphrase("Tr0ub4dor&3"))  # fmt: skip
        assert code == 1 and "does not open it" in err and "Tr0ub4dor" not in out + err, err
        assert proxy.received == []


def test_verify_key_accepts_the_publishers_signature_and_locates_every_other_on_its_entry(
    registry: RegistryServer, tmp_path: Path
) -> None:
    pusher = connect(registry)
    publisher, other = key_pair(tmp_path, "publisher"), key_pair(tmp_path, "other")
    ref = f"{registry.host}/vendor"
    pushed = {}
    for number, name in enumerate(("good", "other-key", "other-digest", "tampered", "unsigned")):
        pushed[name] = push_image(pusher, f"vendor/{name}", "1.0", seed=20 + number)
    digest = {name: image.digest for name, image in pushed.items()}
    signatures = {
        "good": cosign.signed_layer(publisher.private, f"{ref}/good", digest["good"]),
        "other-key": cosign.signed_layer(other.private, f"{ref}/other-key", digest["other-key"]),
        "other-digest": cosign.signed_layer(publisher.private, f"{ref}/x", digest["good"]),
    }
    payload = cosign.payload(f"{ref}/tampered", digest["tampered"])
    der = bytearray(base64.b64decode(cosign.sign(publisher.private, payload)))
    der[-1] ^= 1  # still DER, no longer the signature
    tampered = base64.b64encode(bytes(der)).decode()
    signatures["tampered"] = cosign.Layer(payload, {cosign.SIGNATURE_ANNOTATION: tampered})
    for name, layer in signatures.items():
        push_signature_image(
            pusher, f"vendor/{name}", digest[name], cosign.signature_image([layer])
        )
    images = images_file(
        tmp_path, f"{registry.host}/mirror", [f"{ref}/{name}:1.0" for name in pushed]
    )
    code, out, err = run("plan", "-i", str(images), "-o", str(tmp_path / "plan.json"),
                         "--verify-key", str(publisher.pub_file), "--format", "json")  # fmt: skip
    assert code == 1, out + err
    plan = Plan.read(tmp_path / "plan.json")
    by_name = {c.source_text.split("/")[-1].split(":")[0]: c for c in plan.changes}
    assert by_name["good"].action is Action.CREATE
    for name in ("other-key", "other-digest", "tampered", "unsigned"):
        change = by_name[name]
        assert change.action is Action.ERROR, (name, change)
        assert "publisher.pub" in change.reason, change.reason
    assert [(by_name[n].entry, by_name[n].line) for n in pushed] == [
        (i, i + 2) for i in range(1, 6)
    ]
    found = {
        "other-key": "made with another key, or altered",
        "other-digest": f"for another image ({digest['good']})",
        "tampered": "made with another key, or altered",
        "unsigned": f"there is no {cosign_tag(digest['unsigned'])} tag",
    }
    for name, what in found.items():
        reason = by_name[name].reason
        assert f"no cosign signature of {digest[name]} verifies with the keys tried" in reason
        assert f"({publisher.pub_file} (sha256:" in reason and what in reason, reason
    # The text output places each error on its entry and line.
    code, out, err = run("plan", "-i", str(images), "--verify-key", str(publisher.pub_file))
    assert code == 1, out + err
    for name in found:
        number = list(pushed).index(name) + 1
        block = out.split(f"/vendor/{name}:1.0\n", 1)[1]
        assert block.startswith(f"    source: {ref}/{name}:1.0 (entry {number}, line {number + 2})")
        assert found[name] in block.split("\nx ", 1)[0]


def test_registries_config_names_the_signing_key_and_the_keys_a_source_verifies_with(
    registry: RegistryServer, tmp_path: Path
) -> None:
    pusher = connect(registry)
    image = push_image(pusher, "vendor/app", "1.0", seed=30)
    publisher, team = key_pair(tmp_path, "publisher"), key_pair(tmp_path, "team")
    layer = cosign.signed_layer(publisher.private, f"{registry.host}/vendor/app", image.digest)
    push_signature_image(pusher, "vendor/app", image.digest, cosign.signature_image([layer]))
    config = tmp_path / "registries.yaml"
    config.write_text(
        f'registries:\n  "{registry.host}":\n'
        "    sign: {key: team.key, public_key: team.pub}\n"
        "    verify: {keys: [team.pub, publisher.pub]}\n",
        encoding="utf-8",
    )
    images = images_file(tmp_path, f"{registry.host}/mirror", [f"{registry.host}/vendor/app:1.0"])
    # Plan reads the public key: no passphrase.
    code, out, err = run("plan", "-i", str(images), "--registries-config", str(config),
                         "-o", str(tmp_path / "plan.json"))  # fmt: skip
    assert code == 0, out + err
    assert signing_subchanges(Plan.read(tmp_path / "plan.json")) == [(image.digest, Action.CREATE)]
    code, out, err = run("apply", str(tmp_path / "plan.json"), "--registries-config", str(config),
                         env=with_passphrase())  # fmt: skip
    assert code == 0, out + err
    served, blobs = read_sig(pusher, target_repository(registry, "vendor/app"), image.digest)
    assert len(cosign.verify(served, blobs, team.public_pem, image.digest)) == 1
    assert len(cosign.verify(served, blobs, publisher.public_pem, image.digest)) == 1


# -- plan integrity (design.md §14): a signing sub-change writes only what plan implies ------


def signed_plan(registry: RegistryServer, tmp_path: Path) -> tuple[Path, KeyPair, str]:
    """An image already mirrored (skip), planned again with a signing key: the plan's one
    write is its signature. Returns the plan, the key and the image's digest."""
    image = push_image(registry.host, "team/app", "1.0", seed=40)
    team = key_pair(tmp_path, "team")
    images = images_file(tmp_path, f"{registry.host}/mirror", [f"{registry.host}/team/app:1.0"])
    code, out, err = run("sync", "-i", str(images))
    assert code == 0, out + err
    path = tmp_path / "plan.json"
    code, out, err = run(
        "plan", "-i", str(images), "-o", str(path), "--sign-key", str(team.pub_file)
    )
    assert code == 0, out + err
    return path, team, image.digest


def signing_sub(document: dict[str, Any]) -> dict[str, Any]:
    (sub,) = [s for s in document["changes"][0]["subchanges"] if s["kind"] == "signing"]
    return sub


def test_a_signing_sub_change_aimed_at_the_images_tag_or_without_a_key_is_refused(
    registry: RegistryServer, tmp_path: Path
) -> None:
    path, team, _ = signed_plan(registry, tmp_path)
    original = json.loads(path.read_text())
    before = registry.listing()
    aimed = copy.deepcopy(original)
    sub = signing_sub(aimed)
    sub["target"] = sub["source"] = sub["target"].rsplit(":", 1)[0] + ":1.0"
    unkeyed = copy.deepcopy(original)
    del unkeyed["signing"]
    for forged, expected in ((aimed, ":1.0"), (unkeyed, "names no signing key")):
        path.write_text(json.dumps(reseal(forged)), encoding="utf-8")
        code, out, err = run("apply", str(path), "--sign-key", str(team.key_file),
                             env=with_passphrase())  # fmt: skip
        assert code == 1 and expected in err and "re-run plan" in err, out + err
        assert "Traceback" not in out + err
    assert registry.listing() == before


def test_a_signing_sub_change_for_a_digest_outside_the_image_writes_nothing(
    registry: RegistryServer, tmp_path: Path
) -> None:
    path, team, _ = signed_plan(registry, tmp_path)
    stranger = push_image(registry.host, "team/other", "1.0", seed=41).digest
    document = json.loads(path.read_text())
    sub = signing_sub(document)
    repository = sub["target"].rsplit(":", 1)[0]
    sub["subject"] = sub["digest"] = stranger
    sub["target"] = sub["source"] = f"{repository}:{cosign_tag(stranger)}"
    path.write_text(json.dumps(reseal(document)), encoding="utf-8")
    before = registry.listing()
    code, out, err = run("apply", str(path), "--sign-key", str(team.key_file), "--format", "json",
                         env=with_passphrase())  # fmt: skip
    assert code == 1, out + err
    (result,) = json.loads(out)["images"]
    (signed,) = result["signatures"]
    assert signed["outcome"] == "failed" and "is not the image" in signed["message"]
    assert registry.listing() == before


def test_a_sig_tag_that_changed_since_plan_is_left_untouched(
    registry: RegistryServer, tmp_path: Path
) -> None:
    path, team, digest = signed_plan(registry, tmp_path)
    # Between plan and apply, someone else writes the image's .sig in the target.
    pusher = connect(registry)
    target = target_repository(registry, "team/app")
    other = key_pair(tmp_path, "other")
    meanwhile = cosign.signature_image([cosign.signed_layer(other.private, "x/y", digest)])
    push_signature_image(pusher, target, digest, meanwhile)
    before = registry.listing()
    code, out, err = run("apply", str(path), "--sign-key", str(team.key_file), "--format", "json",
                         env=with_passphrase())  # fmt: skip
    assert code == 1, out + err
    (result,) = json.loads(out)["images"]
    (signed,) = result["signatures"]
    assert signed["outcome"] == "conflict" and "changed since plan" in signed["message"]
    assert "plan saw nothing" in signed["message"] and meanwhile.digest in signed["message"]
    assert registry.listing() == before


# -- secrets: the passphrase and the key never reach any output --------------------------------


def secret_forms(pair: KeyPair, plain: Path) -> list[str]:
    """Every form of the secrets a run holds: the passphrase, each line of the PEM bodies of
    both key files, and the private value in hex and decimal."""
    forms = [PASSPHRASE]
    for path in (pair.key_file, plain):
        forms += [line for line in path.read_text().splitlines() if not line.startswith("-----")]
    value = pair.private.private_numbers().private_value
    forms += [f"{value:x}", str(value)]
    return [form for form in forms if len(form) >= 16]


def test_the_passphrase_and_the_key_never_reach_any_output(
    registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_image(registry.host, "team/app", "1.0", seed=50)
    push_image(registry.host, "team/app", "2.0", seed=51)
    pair = key_pair(tmp_path, "team")
    plain = tmp_path / "plain.key"
    plain.write_bytes(cosign.pkcs8_pem(pair.private))
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    host = registry.host
    images = images_file(tmp_path, f"{host}/mirror", [f"{host}/team/app:1.0"])
    both = images_file(
        tmp_path / "..", f"{host}/mirror", [f"{host}/team/app:1.0", f"{host}/team/app:2.0"]
    )
    plan_file, plan2 = tmp_path / "plan.json", tmp_path / "plan2.json"
    env = with_passphrase()
    outputs = [
        run("plan", "-i", str(images), "-o", str(plan_file), "--sign-key", str(pair.key_file),
            "--debug", "--format", "markdown", env=env),
        run("show", str(plan_file), "--format", "json"),
        run("apply", str(plan_file), "--sign-key", str(pair.key_file), "--debug", env=env),
        run("apply", str(plan_file), "--sign-key", str(plain), "--format", "markdown", "--debug"),
        run("plan", "-i", str(both), "-o", str(plan2), "--sign-key", str(plain), "--debug"),
        run("sync", "-i", str(both), "--sign-key", str(plain), "--sign-children", "--debug"),
        run("sync", "-i", str(both), "--sign-key", str(pair.key_file), "--debug",
            env=with_passphrase("not " + PASSPHRASE)),
        run("sync", "-i", str(both), "--sign-key", str(pair.pub_file), "--debug"),
    ]  # fmt: skip
    assert [code for code, _, _ in outputs] == [0, 0, 0, 0, 0, 0, 1, 1], outputs
    assert "DEBUG" in outputs[2][2] or "GET" in outputs[2][2]  # the debug log was on
    texts = [out + err for _, out, err in outputs]
    texts += [plan_file.read_text(), plan2.read_text(), summary.read_text()]
    for form in secret_forms(pair, plain):
        for text in texts:
            assert form not in text
    assert "public key" in outputs[-1][2]  # a public key cannot sign: said, not traced


def test_signing_into_an_oci_layout_target_is_the_same(
    registry: RegistryServer, tmp_path: Path
) -> None:
    pusher = connect(registry)
    image = push_image(pusher, "team/app", "1.0", seed=60)
    team, upstream = key_pair(tmp_path, "team"), key_pair(tmp_path, "upstream")
    theirs = cosign.signature_image(
        [cosign.signed_layer(upstream.private, f"{registry.host}/team/app", image.digest)]
    )
    push_signature_image(pusher, "team/app", image.digest, theirs)
    disk = tmp_path / "disk"
    images = images_file(tmp_path, f"oci:{disk}", [f"{registry.host}/team/app:1.0"])
    code, out, err = run("sync", "-i", str(images), "--sign-key", str(team.key_file),
                         env=with_passphrase())  # fmt: skip
    assert code == 0, out + err
    (layout,) = {path.parent for path in disk.rglob("index.json")}
    assert not layout_problems(layout)
    sig = tagged_entries(layout)[cosign_tag(image.digest)]

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / Path(*digest.split(":", 1))).read_bytes()

    served = blob(sig)
    document = json.loads(served)
    blobs = {
        d: blob(d)
        for d in [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]
    }
    [ours] = cosign.verify(served, blobs, team.public_pem, image.digest)
    [kept] = cosign.verify(served, blobs, upstream.public_pem, image.digest)
    assert kept == json.loads(theirs.manifest)["layers"][0]["digest"]
    assert theirs.manifest.decode().split('"layers":[')[1][:-2] in served.decode()
    claim = json.loads(blobs[ours])["critical"]
    assert claim["identity"]["docker-reference"] == f"oci:{layout}"

    code, out, err = run("plan", "-i", str(images), "--sign-key", str(team.pub_file),
                         "-o", str(tmp_path / "again.json"))  # fmt: skip
    assert code == 0, out + err
    assert signing_subchanges(Plan.read(tmp_path / "again.json")) == [(image.digest, Action.SKIP)]


def test_key_options_that_cannot_work_are_usage_errors_before_any_request(
    registry: RegistryServer, tmp_path: Path
) -> None:
    push_image(registry.host, "team/app", "1.0", seed=70)
    team = key_pair(tmp_path, "team")
    with FaultProxy(registry.host) as proxy:
        images = images_file(tmp_path, f"{proxy.host}/mirror", [f"{proxy.host}/team/app:1.0"])
        code, out, err = run("plan", "-i", str(images), "--sign-children")
        assert code == 1 and "--sign-children signs with the signing key" in err, out + err
        code, out, err = run("plan", "-i", str(images), "--verify-key", str(tmp_path / "no.pub"))
        assert code == 1 and "no.pub" in err and "Traceback" not in err, out + err
        assert proxy.received == []
        plan_file = str(tmp_path / "plan.json")
        code, out, err = run("plan", "-i", str(images), "-o", plan_file)
        assert code == 0, out + err
        proxy.received.clear()
        code, out, err = run("apply", plan_file, "--verify-key", str(team.pub_file))
        assert code == 2 and "--verify-key is checked when the plan is made" in err, out + err
        code, out, err = run("apply", plan_file, "--sign-key", str(team.key_file),
                             env=with_passphrase())  # fmt: skip
        assert code == 1 and "made without a signing key" in err, out + err
        code, out, err = run("apply", plan_file, "--sign-children")
        assert code == 1 and "decided when the plan is made" in err, out + err
        assert proxy.received == []


# -- the users' world: sources behind a mirror, sources across an air gap ---------------------


def test_sources_behind_a_mirror_are_verified_with_their_registrys_keys(
    registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker Hub cannot be reached; its images come from a pull-through mirror, by digest and
    without a tag. The registries config names Docker Hub's publisher key: the signatures are
    read where the image was found, in the mirror."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    pusher = connect(registry)
    publisher, other = key_pair(tmp_path, "publisher"), key_pair(tmp_path, "other")
    signed = push_image(pusher, "library/busybox", None, seed=80)
    forged = push_image(pusher, "library/alpine", "3.20", seed=81)
    for image, key, name in ((signed, publisher, "busybox"), (forged, other, "alpine")):
        layer = cosign.signed_layer(key.private, f"index.docker.io/library/{name}", image.digest)
        push_signature_image(
            pusher, f"library/{name}", image.digest, cosign.signature_image([layer])
        )
    config = tmp_path / "registries.yaml"
    config.write_text(
        f'registries:\n  docker.io:\n    mirrors: ["{registry.host}"]\n'
        "    verify: {keys: [publisher.pub]}\n",
        encoding="utf-8",
    )
    images = tmp_path / "external-images.yaml"
    images.write_text(
        f"target: {registry.host}/mirror\nimages:\n"
        f'- source: "busybox@{signed.digest}"\n  tag: "1.36"\n'
        '- source: "alpine:3.20"\n',
        encoding="utf-8",
    )
    with OnlyLoopback() as dns:
        code, out, err = run("plan", "-i", str(images), "--registries-config", str(config),
                             "-o", str(tmp_path / "plan.json"))  # fmt: skip
    assert code == 1, out + err
    assert dns.refused == []
    busybox, alpine = Plan.read(tmp_path / "plan.json").changes
    assert busybox.action is Action.CREATE, busybox.reason
    assert alpine.action is Action.ERROR and alpine.line == 5
    assert f"{tmp_path / 'publisher.pub'} (sha256:" in alpine.reason
    assert "made with another key, or altered" in alpine.reason


def test_sources_across_an_air_gap_are_verified_from_the_disk(
    registry: RegistryServer, tmp_path: Path
) -> None:
    """The signatures travel on the disk with the images; the disconnected side verifies them
    there with the publisher's key."""
    pusher = connect(registry)
    publisher, other = key_pair(tmp_path, "publisher"), key_pair(tmp_path, "other")
    image = push_image(pusher, "vendor/app", "1.0", seed=90)
    layer = cosign.signed_layer(publisher.private, f"{registry.host}/vendor/app", image.digest)
    push_signature_image(pusher, "vendor/app", image.digest, cosign.signature_image([layer]))
    disk = tmp_path / "disk"
    images = images_file(tmp_path, f"oci:{disk}", [f"{registry.host}/vendor/app:1.0"])
    code, out, err = run("sync", "-i", str(images), "--verify-key", str(publisher.pub_file))
    assert code == 0, out + err
    inside = ["--target", f"{registry.host}/inside", "--source-layout", str(disk)]
    code, out, err = run(
        "plan", "-i", str(images), *inside, "--verify-key", str(publisher.pub_file)
    )
    assert code == 0 and "+ create" in out, out + err
    code, out, err = run("plan", "-i", str(images), *inside, "--verify-key", str(other.pub_file))
    assert code == 1 and "x error" in out, out + err
    assert "made with another key, or altered" in out and "other.pub" in out
