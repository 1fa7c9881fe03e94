"""What a newcomer meets in the first hour (issue 16): help, messages, hints and outputs, each
asserted as the user sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from imagesync.cli import main
from tests.harness.images import push_image
from tests.harness.layouts import LayoutPusher

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SYNCER_IMAGES_FILE",
        "SYNCER_TARGET_REPO",
        "SYNCER_TARGET_REPO_PREFIX",
        "SYNCER_DRY_RUN",
        "SYNCER_DEBUG",
        "GITHUB_STEP_SUMMARY",
    ):
        monkeypatch.delenv(name, raising=False)


def imagesync(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, terminal_width=80)


def images_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "external-images.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("Foo/Bar:1.0", "(fix: write the repository as foo/bar)"),
        (
            "bitnami//postgres-exporter:0.8",
            "(fix: write the repository as bitnami/postgres-exporter)",
        ),
        ("ghcr.io/org/-app:1", "such as bitnami/postgres-exporter)"),
        (
            "Reg_io/app:1",
            "with an optional :port, such as registry.example.com or localhost:5000)",
        ),
    ],
)
def test_a_hint_says_what_a_valid_name_looks_like(tmp_path: Path, source: str, hint: str) -> None:
    path = images_file(tmp_path, f"target: reg.io/ext\nimages:\n- source: {source}\n")
    result = imagesync("validate", "-i", str(path))
    assert result.exit_code == 1
    assert f"{path}:3: entry 1: source '{source}'" in result.stderr
    assert hint in result.stderr
    assert "fix the repository name" not in result.stderr


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("https://reg.io/mirror", "(fix: leave out https://: write reg.io/mirror)"),
        (
            "http://localhost:5000/m/",
            "(fix: leave out http://: write localhost:5000/m; plain HTTP is `insecure: true` "
            "for the host in --registries-config)",
        ),
    ],
)
def test_a_target_with_a_scheme_gets_a_hint_to_leave_it_out(
    tmp_path: Path, target: str, hint: str
) -> None:
    path = images_file(tmp_path, "images:\n- source: busybox:1.36\n")
    result = imagesync("validate", "-i", str(path), "--target", target)
    assert result.exit_code == 1
    assert f"starts with the URL scheme {target.split(':')[0]}://" in result.stderr
    assert hint in result.stderr


def test_a_source_with_a_scheme_gets_the_same_hint(tmp_path: Path) -> None:
    path = images_file(
        tmp_path, "target: reg.io/ext\nimages:\n- source: https://ghcr.io/org/app:1\n"
    )
    result = imagesync("validate", "-i", str(path))
    assert "(fix: leave out https://: write ghcr.io/org/app:1)" in result.stderr


COMMANDS = ("validate", "plan", "apply", "show", "report", "sync", "diff")


def test_the_command_list_fits_without_a_cut() -> None:
    result = imagesync("--help")
    listed = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(COMMANDS)
    for line in listed:
        assert not line.endswith("..."), line
        assert line.endswith("."), line
        assert len(line) <= 80


@pytest.mark.parametrize("command", COMMANDS)
def test_no_help_text_is_wrapped_at_a_hyphen(command: str) -> None:
    text = imagesync(command, "--help").stdout
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert not any(line.rstrip().endswith("-") for line in lines), text
    if command not in ("show", "report", "diff", "apply"):
        assert "external-images.yaml" in text.replace("\n", " ")


@pytest.mark.parametrize(
    ("variable", "command"), [("SYNCER_DRY_RUN", "sync"), ("SYNCER_DEBUG", "plan")]
)
def test_a_boolean_variable_with_another_value_names_the_variable(
    variable: str, command: str
) -> None:
    result = imagesync(command, env={variable: "maybe"})
    assert result.exit_code == 2
    assert (
        f"{variable}='maybe' is neither true nor false; set it to true or false "
        "(1 or 0, yes or no, on or off also do; empty is false)"
    ) in result.stderr
    assert "Recognized values" not in result.stderr


def test_a_boolean_variable_still_takes_the_image_syncers_values(tmp_path: Path) -> None:
    path = images_file(tmp_path, "images:\n- source: app:1\n")
    for value in ("true", "1", "yes", "TRUE"):
        result = imagesync(
            "sync",
            "-i",
            str(path),
            "--target",
            f"oci:{tmp_path}/mirror",
            "--source-layout",
            str(tmp_path),
            env={"SYNCER_DRY_RUN": value},
        )
        assert "Plan: " in result.stdout, result.output
        assert not (tmp_path / "mirror").exists()


def _empty_layout_plan(tmp_path: Path, name: str, text: str) -> tuple[Path, Path]:
    """A plan (all errors: the layout tree holds nothing) of images file ``name``; no network."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    plan = tmp_path / f"{path.stem}.json"
    source, target = tmp_path / "disk", tmp_path / "mirror"
    source.mkdir(exist_ok=True)
    args = ["-i", str(path), "--source-layout", str(source), "--target", f"oci:{target}"]
    made = imagesync("plan", *args, "-o", str(plan))
    assert plan.is_file(), made.output
    return path, plan


def test_apply_with_another_images_file_names_both_files(tmp_path: Path) -> None:
    made_from, plan = _empty_layout_plan(tmp_path, "c.yaml", "images:\n- source: app:1\n")
    other = tmp_path / "ok.yaml"
    other.write_text("images:\n- source: app:2\n", encoding="utf-8")
    result = imagesync("apply", str(plan), "-i", str(other))
    assert result.exit_code == 1
    assert f"Error: the plan was made from {made_from} (sha256 " in result.stderr
    assert f"not from {other} as it is now (sha256 " in result.stderr
    assert f"fix: re-run plan on {other}, or apply with -i {made_from}" in result.stderr
    made_from.write_text("images:\n- source: app:3\n", encoding="utf-8")
    edited = imagesync("apply", str(plan), "-i", str(made_from))
    assert f"the plan was made from another version of {made_from} (sha256 " in edited.stderr
    assert f"fix: re-run plan on {made_from}\n" in edited.stderr


@pytest.fixture
def layouts(tmp_path: Path) -> tuple[Path, list[str]]:
    """An images file of two images in a source layout tree, and the options that mirror them
    into another tree: a world with nothing but Python."""
    disk = tmp_path / "disk"
    for seed, name in enumerate(("app", "tool"), start=1):
        push_image(LayoutPusher(disk), f"demo.example/{name}", "1.0", seed=seed, layer_size=64)
    path = images_file(
        tmp_path,
        'images:\n- source: "demo.example/app:1.0"\n- source: "demo.example/tool:1.0"\n',
    )
    where = ["--source-layout", str(disk), "--target", f"oci:{tmp_path / 'mirror'}"]
    return path, ["-i", str(path), *where]


def test_changed_only_with_nothing_changed_says_no_changes(
    layouts: tuple[Path, list[str]],
) -> None:
    _, options = layouts
    assert imagesync("apply", *options).exit_code == 0
    result = imagesync("plan", *options, "--changed-only")
    assert result.exit_code == 0
    assert "No changes: all 2 images are in the target already.\n" in result.stdout
    assert "\n\n\n" not in result.stdout
    markdown = imagesync("plan", *options, "--changed-only", "--format", "markdown").stdout
    assert "\nNo changes: all 2 images are in the target already.\n" in markdown


def test_apply_i_writes_the_plan_it_made_to_the_step_summary(
    layouts: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, options = layouts
    summary = tmp_path / "summary.md"
    result = imagesync("apply", *options, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0, result.output
    text = summary.read_text(encoding="utf-8")
    assert text.index("### imagesync plan for ") < text.index("### imagesync apply")


def test_show_exits_as_plan_did(layouts: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, options = layouts
    clean = tmp_path / "clean.json"
    assert imagesync("plan", *options, "-o", str(clean)).exit_code == 0
    assert imagesync("show", str(clean)).exit_code == 0
    path.write_text(path.read_text() + '- source: "demo.example/gone:1.0"\n')
    failing = tmp_path / "failing.json"
    assert imagesync("plan", *options, "-o", str(failing)).exit_code == 1
    for fmt in ("text", "json", "markdown"):
        shown = imagesync("show", str(failing), "--format", fmt)
        assert shown.exit_code == 1
        assert "demo.example/gone" in shown.stdout


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            'target: reg.io/ext\nimages:\n- source: "busybox:1.36"\n  amd64Only: true\n'
            '  tag: "1.36-v1\n- source: "alpine:3.20"\n',
            ':5: the quote " opened on line 5 is not closed (fix: close it: tag: "1.36-v1")',
        ),
        (
            "target: reg.io/ext\nimages:\n\t- source: busybox:1.36\n",
            ":3: line 3 is indented with a tab; YAML indents with spaces only "
            "(fix: replace the tab with spaces)",
        ),
        (
            "target: reg.io/ext\nimages:\n- source: busybox: 1.36\n",
            ":3: line 3 has ': ' inside a value, which YAML reads as another key "
            '(fix: quote the value: - source: "busybox: 1.36")',
        ),
        (
            "target: reg.io/ext\nimages:\n- source: busybox:1.36\n  tag\n  amd64Only: true\n",
            ":4: line 4 has no ':' after its key (fix: write the key with a value: tag: <value>)",
        ),
        (
            "target: reg.io/ext\nimages:\n- source: busybox:1.36\n tag: v1\n",
            ":4: line 4 is not lined up with the lines above it",
        ),
    ],
)
def test_yaml_syntax_errors_in_plain_words_at_their_cause(
    tmp_path: Path, text: str, said: str
) -> None:
    path = images_file(tmp_path, text)
    result = imagesync("validate", "-i", str(path))
    assert result.exit_code == 1
    assert f"{path}{said}" in result.stderr
    for pyyaml in ("expected <block end>", "cannot start any token", "<scalar>", "while "):
        assert pyyaml not in result.stderr


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "registries:\n  a.io:\n    insecure: true\n    insecur: true\n",
            ":4: registries.a.io: unknown key 'insecur': did you mean insecure? "
            "(fix: rename it to insecure)",
        ),
        (
            "registris:\n  a.io: {}\n",
            ":1: unknown key 'registris': did you mean registries? (fix: rename it to registries)",
        ),
        (
            "registries:\n  a.io:\n    insecure: true\n    max_concurrency: 0\n",
            ":4: registries.a.io.max_concurrency must be a whole number from 1 to 256 "
            "(fix: write how many requests may be in flight: max_concurrency: 8)",
        ),
        (
            "registries:\n  b.io:\n  https://a.io: {}\n",
            ":3: registries: 'https://a.io' is not a registry host",
        ),
        (
            "registries:\n  a.io:\n\tinsecure: true\n",
            ":3: line 3 is indented with a tab; YAML indents with spaces only",
        ),
    ],
)
def test_registries_config_problems_are_located_like_the_images_files(
    tmp_path: Path, text: str, said: str
) -> None:
    config = tmp_path / "registries.yaml"
    config.write_text(text, encoding="utf-8")
    path = images_file(tmp_path, "target: reg.io/ext\nimages:\n- source: busybox:1.36\n")
    result = imagesync("plan", "-i", str(path), "--registries-config", str(config))
    assert result.exit_code == 1
    first, last = result.stderr.splitlines()
    assert first.startswith(f"{config}{said}")
    assert last == f"{config}: not valid, 1 error"


def test_one_word_per_outcome_in_every_format(layouts: tuple[Path, list[str]]) -> None:
    """plan: create / skip / conflict / error; apply: created / skipped / conflict / failed —
    in text, JSON and Markdown, in the lines and in the counts."""
    import json

    _, options = layouts
    applied = imagesync("apply", *options, "--format", "json")
    assert json.loads(applied.stdout)["summary"] == {
        "created": 2,
        "skipped": 0,
        "conflict": 0,
        "failed": 0,
    }
    again = imagesync("apply", *options)
    assert "Apply: 0 created, 2 skipped, 0 conflicts, 0 failed." in again.stdout
    assert again.stdout.count("= skipped ") == 2
    planned = imagesync("plan", *options)
    assert planned.stdout.count("= skip ") == 2
    assert "Plan: 0 to create, 2 to skip." in planned.stdout
    assert json.loads(imagesync("plan", *options, "--format", "json").stdout)["summary"] == {
        "create": 0,
        "skip": 2,
        "conflict": 0,
        "error": 0,
    }
    markdown = imagesync("plan", *options, "--format", "markdown").stdout
    assert "**Plan: 0 to create, 2 to skip.**" in markdown
    for text in (again.stdout, planned.stdout, markdown):
        assert "unchanged" not in text


def test_counts_are_singular_for_one(layouts: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, options = layouts
    path.write_text(path.read_text() + '- source: "demo.example/gone:1.0"\n')
    planned = imagesync("plan", *options)
    assert "Plan: 2 to create, 0 to skip, 1 error." in planned.stdout
    applied = imagesync("apply", *options)
    assert "Apply: 2 created, 0 skipped, 0 conflicts, 1 failed." in applied.stdout


def test_a_short_digest_is_labelled() -> None:
    from imagesync.render import plan_text
    from tests.test_plan_document import make_plan

    text = plan_text(make_plan())
    assert ".sig (digest bbbbbbbbbbbb)" in text
    assert "(bbbbbbbbbbbb)" not in text


def test_apply_names_each_image_once_in_the_report_and_once_as_its_copy_begins(
    layouts: tuple[Path, list[str]], tmp_path: Path
) -> None:
    _, options = layouts
    plan = tmp_path / "plan.json"
    assert imagesync("plan", *options, "-o", str(plan)).exit_code == 0
    result = imagesync("apply", str(plan))
    assert result.exit_code == 0, result.output
    for name in ("app", "tool"):
        (copying,) = [line for line in result.stderr.splitlines() if f"/{name}:" in line]
        assert copying.startswith(f"copying demo.example/{name}:1.0 -> oci:")
        (reported,) = [line for line in result.stdout.splitlines() if f"/{name}:" in line]
        assert reported.startswith("+ created  oci:")
    assert "created" not in result.stderr


def test_the_readme_lists_every_command_and_the_exit_codes_of_show_and_diff() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Commands\n\n```\n", 1)[1].split("```", 1)[0]
    listed = {line.split()[1] for line in block.splitlines() if line.startswith("imagesync ")}
    commands = imagesync("--help").stdout.split("Commands:\n", 1)[1].splitlines()
    assert listed == {line.split()[0] for line in commands}
    assert "`show` exits as `plan` did: 1 when the plan holds a conflict or an error" in readme
    assert (
        "`diff` exits 0 when the two plans\ndecide the same for every image, 2 when they" in readme
    )


def test_a_json_file_that_is_no_plan_is_named_so(tmp_path: Path) -> None:
    other = tmp_path / "package.json"
    other.write_text('{"name": "web"}', encoding="utf-8")
    result = imagesync("show", str(other))
    assert result.exit_code == 1
    assert f"Error: {other} is not an imagesync plan: it has no format_version\n" in result.stderr
    assert "None" not in result.stderr
