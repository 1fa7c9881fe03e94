"""`imagesync validate`: every problem on stderr, located; a summary on stdout; exit 0 or 1."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from imagesync.cli import main

REPO = Path(__file__).resolve().parent.parent
BAD = sorted((REPO / "examples" / "bad").glob("*.yaml"))
THREE_POINT_ONE = re.compile(r"3\.1(?![0-9])")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root with none of the SYNCER_ variables of the caller."""
    monkeypatch.chdir(REPO)
    for name in ("SYNCER_IMAGES_FILE", "SYNCER_TARGET_REPO", "SYNCER_TARGET_REPO_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def validate(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, ["validate", *args], env=env)


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.+)$", path.read_text(encoding="utf-8"), flags=re.M)


def test_the_example_is_valid() -> None:
    result = validate("-i", "examples/external-images.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout == "examples/external-images.yaml: 5 images, valid\n"
    assert result.stderr == ""


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_example_exits_1_with_located_messages(path: Path) -> None:
    relative = path.relative_to(REPO)
    result = validate("-i", str(relative))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    for expectation in expectations(path):
        needle = (
            f"{relative}:{expectation}"
            if expectation[0].isdigit()
            else f"{relative}: {expectation}"
        )
        assert any(line.startswith(needle) for line in lines), f"{needle!r} not in {lines}"
    assert lines[-1].startswith(f"{relative}: not valid, ")
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_several_problems_are_all_printed_with_a_count() -> None:
    result = validate("-i", "examples/bad/several-problems.yaml")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 7  # six problems and the summary
    assert lines[-1] == "examples/bad/several-problems.yaml: not valid, 5 errors, 1 warning"
    # File order, each with its entry number.
    entries = [int(m.group(1)) for line in lines if (m := re.search(r": entry (\d+): ", line))]
    assert entries == [1, 2, 3, 4, 5]


def test_tag_three_point_ten_is_the_tag_three_point_ten(tmp_path: Path) -> None:
    images = tmp_path / "external-images.yaml"
    images.write_text(
        'images:\n- source: "python@sha256:' + "a" * 64 + '"\n  tag: 3.10\n', encoding="utf-8"
    )
    result = validate("-i", str(images), "-r", "reg.io/ext/")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"{images}: 1 image, valid\n",
        "",
    )
    assert not THREE_POINT_ONE.search(result.output)


REALWORLD_DIR = REPO / "tests" / "realworld"
REALWORLD = sorted(REALWORLD_DIR.glob("*.yaml"))


def test_the_real_files_are_kept_byte_for_byte() -> None:
    """The copies under tests/realworld/ are the published files: SHA256SUMS records them, and
    where the originals are at hand (../shared/realworld/ next to the repository) they match."""
    recorded = dict(
        reversed(line.split("  ", 1))
        for line in (REALWORLD_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    )
    assert sorted(recorded) == [p.name for p in REALWORLD]
    for path in REALWORLD:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded[path.name], path.name
    originals = REPO.parent / "shared" / "realworld"
    for original in sorted(originals.glob("*.yaml")):
        assert (REALWORLD_DIR / original.name).read_bytes() == original.read_bytes(), original


@pytest.mark.parametrize("path", REALWORLD, ids=[p.name.split("__")[1] for p in REALWORLD])
def test_every_real_file_validates(path: Path) -> None:
    """The image-syncer's users' files, byte for byte: a target from the command line (the
    image-syncer's -r, with its trailing /) is all they need."""
    result = validate("-i", str(path), "-r", "europe-docker.pkg.dev/kyma-project/prod/external/")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: ") and ", valid" in result.stdout


def test_the_real_file_with_target_repo_prefix_validates_without_a_target() -> None:
    path = REALWORLD_DIR / "kyma-project__test-infra__cmd_image-syncer_external-images.yaml"
    result = validate("-i", str(path))
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"{path}: 42 images, valid\n",
        "",
    )


def test_warnings_are_printed_and_do_not_fail(tmp_path: Path) -> None:
    images = tmp_path / "external-images.yaml"
    images.write_text(
        "target: reg.io/ext\nimages:\n- source: busybox:1.36\n- source: library/busybox:1.36\n"
        "- source: quay.io/org/app\n  tag: v0.7.0\n"
    )
    result = validate("-i", str(images))
    assert result.exit_code == 0
    assert result.stdout == f"{images}: 3 images, valid (2 warnings)\n"
    assert f"{images}:4: entry 2: warning: repeats entry 1 (line 3)" in result.stderr
    assert f"{images}:5: entry 3: warning: source quay.io/org/app has neither" in result.stderr


def test_one_image_is_singular(tmp_path: Path) -> None:
    images = tmp_path / "one.yaml"
    images.write_text("target: reg.io/ext\nimages:\n- source: busybox:1.36\n")
    assert validate("-i", str(images)).stdout == f"{images}: 1 image, valid\n"


def test_target_option_and_environment(tmp_path: Path) -> None:
    images = tmp_path / "external-images.yaml"
    images.write_text("images:\n- source: busybox:1.36\n")
    missing = validate("-i", str(images))
    assert missing.exit_code == 1
    assert (
        f"{images}: no target: set `target:` in the file, --target / -r, or SYNCER_TARGET_REPO / "
        "SYNCER_TARGET_REPO_PREFIX"
    ) in missing.stderr
    assert validate("-i", str(images), "--target", "reg.io/ext").exit_code == 0
    assert validate("-i", str(images), env={"SYNCER_TARGET_REPO": "reg.io/ext"}).exit_code == 0
    bad = validate("-i", str(images), "--target", "Reg.io/EXT")
    assert bad.exit_code == 1
    assert "--target / -r / SYNCER_TARGET_REPO 'Reg.io/EXT'" in bad.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["-r", "reg.io/ext/"], {}),
        (["--target-repo-prefix", "reg.io/ext/"], {}),
        (["--target", "reg.io/ext/"], {}),
        ([], {"SYNCER_TARGET_REPO_PREFIX": "reg.io/ext/"}),
        ([], {"SYNCER_TARGET_REPO": "reg.io/ext", "SYNCER_TARGET_REPO_PREFIX": "reg.io/ext/"}),
    ],
)
def test_the_image_syncer_names_for_the_target(
    tmp_path: Path, args: list[str], env: dict[str, str | None]
) -> None:
    images = tmp_path / "external-images.yaml"
    images.write_text("images:\n- source: busybox:1.36\n")
    result = validate("-i", str(images), *args, env=env)
    assert result.exit_code == 0, result.output


def test_two_target_variables_that_disagree_are_a_usage_error(tmp_path: Path) -> None:
    images = tmp_path / "external-images.yaml"
    images.write_text("images:\n- source: busybox:1.36\n")
    env = {"SYNCER_TARGET_REPO": "a.io/x", "SYNCER_TARGET_REPO_PREFIX": "b.io/y/"}
    result = validate("-i", str(images), env=env)
    assert result.exit_code == 2
    assert (
        "SYNCER_TARGET_REPO='a.io/x' and SYNCER_TARGET_REPO_PREFIX='b.io/y/' name different "
        "prefixes; set one of them"
    ) in result.stderr
    # The command line wins over both, as it wins over any variable.
    assert validate("-i", str(images), "-r", "c.io/z/", env=env).exit_code == 0


def test_images_file_from_the_default_path_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "external-images.yaml").write_text("target: reg.io/ext\nimages:\n- source: a:1\n")
    (tmp_path / "other.yaml").write_text(
        "target: reg.io/ext\nimages:\n- source: b:1\n- source: c:1\n"
    )
    assert validate().stdout == "external-images.yaml: 1 image, valid\n"
    from_env = validate(env={"SYNCER_IMAGES_FILE": "other.yaml"})
    assert from_env.stdout == "other.yaml: 2 images, valid\n"


def test_missing_file_is_a_clear_error() -> None:
    result = validate("-i", "does/not/exist.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: does/not/exist.yaml: cannot read the images file: No such file or directory"
    )
    assert isinstance(result.exception, SystemExit)


def test_help_mentions_the_options() -> None:
    result = validate("--help")
    assert result.exit_code == 0
    assert "--images-file" in result.stdout
    assert "-r, --target, --target-repo-prefix PREFIX" in result.stdout
    assert "SYNCER_TARGET_REPO" in result.stdout
    assert "SYNCER_TARGET_REPO_PREFIX" in result.stdout


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCER_")}
    return subprocess.run(
        [sys.executable, "-m", "imagesync", "validate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_real_process_reports_problems_without_a_traceback() -> None:
    result = _run("-i", "examples/bad/several-problems.yaml")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert (
        "examples/bad/several-problems.yaml:10: entry 1: tag true is not text: YAML reads it as a "
        'boolean (fix: quote it: tag: "true")'
    ) in result.stderr
    assert (
        "examples/bad/several-problems.yaml:12: entry 2: "
        "unknown key 'amd64only': did you mean amd64Only?"
    ) in result.stderr
    assert not THREE_POINT_ONE.search(result.stderr)


def test_real_process_valid_file_and_missing_file(tmp_path: Path) -> None:
    valid = _run("-i", "examples/external-images.yaml")
    assert (valid.returncode, valid.stdout, valid.stderr) == (
        0,
        "examples/external-images.yaml: 5 images, valid\n",
        "",
    )
    missing = _run(cwd=tmp_path)  # the default external-images.yaml is not there
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert "external-images.yaml: cannot read the images file" in missing.stderr
