"""The README's two commands and the set-up they share: scripts/demo (the venv, imagesync in it,
the demo: never apt), scripts/test (the apt packages too, as root or with sudo, then pytest),
both through scripts/setup; and .ci/run, which runs scripts/test.

apt-get, sudo, id and python3 are stand-ins on PATH that record what they were asked to do, and
so is pip in the venv: nothing is downloaded or installed from outside. The venv is a real one
(``python3 -m venv`` makes it with the test's Python, without pip) whose pip "installs" the
checkout as an editable install does (a .pth file) and finds imagesync's dependencies in the
test's own environment. Everything else is the real scripts, run by the real bash.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.registry import missing_tool, require_binary

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
SETUP = SCRIPTS / "setup"
BASH = shutil.which("bash") or "/bin/bash"
PACKAGES = "ca-certificates docker-registry skopeo shellcheck python3-venv"
TOOLS = ("docker-registry", "skopeo", "shellcheck")

# apt-get "installs" a package's command as a stand-in that does nothing, so that a second
# run finds it; python3 makes a real venv, with a pip that records its arguments.
FAKES = {
    "id": 'echo "$FAKE_UID"\n',
    "sudo": 'echo "sudo $*" >>"$LOG"\n[ "$1" = -n ] && shift\nFAKE_UID=0 exec "$@"\n',
    "apt-get": (
        'echo "apt-get $* (uid $(id -u))" >>"$LOG"\n'
        'for package in "$@"; do\n'
        f'  case "$package" in {"|".join(TOOLS)})\n'
        '    printf "#!%s\\nexit 0\\n" "$BASH" >"${0%/*}/$package"\n'
        f'    {shutil.which("chmod") or "/bin/chmod"} +x "${{0%/*}}/$package" ;;\n'
        "  esac\n"
        "done\n"
    ),
}
PYTHON3 = f"""#!{sys.executable}
import os, sys, venv
from pathlib import Path

with open(os.environ["LOG"], "a") as log:
    print("python3", *sys.argv[1:], file=log)
if sys.argv[1] == "-c":  # whether ensurepip is there (Debian: the python3-venv package)
    sys.exit(int(os.environ.get("FAKE_NO_VENV", "1")))
if sys.argv[1:3] == ["-m", "venv"]:
    venv.EnvBuilder(with_pip=False).create(sys.argv[3])
    (site_packages,) = Path(sys.argv[3], "lib").glob("python3*/site-packages")
    (site_packages / "pip").mkdir()
    (site_packages / "pip" / "__init__.py").write_text("")
    (site_packages / "pip" / "__main__.py").write_text(os.environ["FAKE_PIP"])
    (site_packages / "dependencies.pth").write_text(os.environ["FAKE_DEPENDENCIES"])
"""
# `pip install -e .` as the stand-in does it: the checkout on sys.path, by a .pth file.
PIP = """import os, sys
from pathlib import Path

with open(os.environ["LOG"], "a") as log:
    print("pip", *sys.argv[1:], file=log)
(Path(__file__).parent.parent / "_imagesync.pth").write_text(os.getcwd() + "\\n")
"""


def fake_machine(tmp_path: Path, *, uid: int, sudo: bool, tools: bool = False) -> dict[str, str]:
    """A PATH of stand-ins: a bare Debian machine (no docker-registry, skopeo, shellcheck
    unless ``tools``; no python3-venv); and a checkout of the set-up alone, unless one is
    there already (:func:`fresh_clone`)."""
    repo = tmp_path / "repo"
    if not repo.exists():
        (repo / "scripts").mkdir(parents=True)
        (repo / "imagesync").mkdir()
        (repo / "imagesync" / "__init__.py").write_text("")
        shutil.copy(SETUP, repo / "scripts" / "setup")
        shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {name: f"#!{BASH}\n{body}" for name, body in FAKES.items()}
    if not sudo:
        del fakes["sudo"]
    if tools:
        fakes |= {name: f"#!{BASH}\nexit 0\n" for name in TOOLS}
    fakes["python3"] = PYTHON3
    for name, body in fakes.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(0o755)
    (bin_dir / "bash").symlink_to(BASH)  # the scripts run each other by their #! lines
    return {
        "PATH": str(bin_dir),
        "LOG": str(tmp_path / "log"),
        "FAKE_UID": str(uid),
        "FAKE_PIP": PIP,
        "FAKE_DEPENDENCIES": "".join(f"{p}\n" for p in site.getsitepackages()),
        "HOME": str(tmp_path),
    }


def run(
    tmp_path: Path, env: dict[str, str], script: str, *args: str
) -> tuple[int, list[str], subprocess.CompletedProcess[str]]:
    """Runs ``scripts/<script>``: its exit code, the stand-ins' calls, its output."""
    log = tmp_path / "log"
    log.unlink(missing_ok=True)
    result = subprocess.run(
        [BASH, str(tmp_path / "repo" / "scripts" / script), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls, result


def setup(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, list[str], str]:
    code, calls, result = run(tmp_path, env, "setup", *args)
    return code, calls, result.stderr


PIP_INSTALL = "pip install --quiet -e .[dev]"


def test_as_root_without_sudo(tmp_path: Path) -> None:
    code, calls, stderr = setup(tmp_path, fake_machine(tmp_path, uid=0, sudo=False))
    assert code == 0, stderr
    assert calls == [
        "python3 -c import ensurepip, venv",
        "apt-get update (uid 0)",
        f"apt-get install -y --no-install-recommends {PACKAGES} (uid 0)",
        "python3 -m venv .venv",
        PIP_INSTALL,
    ]
    assert "sudo" not in stderr


def test_as_a_user_with_sudo(tmp_path: Path) -> None:
    code, calls, stderr = setup(tmp_path, fake_machine(tmp_path, uid=1000, sudo=True))
    assert code == 0, stderr
    # No terminal to ask a password on: sudo -n fails at once rather than wait.
    assert calls[1:5] == [
        "sudo -n apt-get update",
        "apt-get update (uid 0)",
        f"sudo -n apt-get install -y --no-install-recommends {PACKAGES}",
        f"apt-get install -y --no-install-recommends {PACKAGES} (uid 0)",
    ]
    assert calls[-1] == PIP_INSTALL
    assert "+ sudo -n apt-get update" in stderr


def test_as_a_user_without_sudo_says_what_to_do(tmp_path: Path) -> None:
    code, calls, stderr = setup(tmp_path, fake_machine(tmp_path, uid=1000, sudo=False))
    assert code == 1
    assert not any(call.startswith("apt-get") for call in calls)
    assert "needs root, and there is no sudo: run scripts/setup as root" in stderr
    assert "scripts/setup --no-apt for the venv alone" in stderr


def test_no_apt_makes_the_venv_alone(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, uid=1000, sudo=False) | {"FAKE_NO_VENV": "0"}
    code, calls, stderr = setup(tmp_path, env, "--no-apt")
    assert code == 0, stderr
    assert calls == ["python3 -c import ensurepip, venv", "python3 -m venv .venv", PIP_INSTALL]


def test_no_apt_without_python3_venv_says_the_command(tmp_path: Path) -> None:
    code, calls, stderr = setup(tmp_path, fake_machine(tmp_path, uid=1000, sudo=True), "--no-apt")
    assert code == 1
    assert calls == ["python3 -c import ensurepip, venv"]
    said = " ".join(stderr.split())
    assert "install it: sudo apt-get install python3-venv (or run scripts/setup," in said


def test_a_second_run_installs_nothing(tmp_path: Path) -> None:
    """No apt, no venv, no pip: nothing that could ask the network."""
    env = fake_machine(tmp_path, uid=0, sudo=False)
    assert setup(tmp_path, env)[0] == 0
    code, calls, stderr = setup(tmp_path, env)
    assert (code, calls) == (0, []), stderr
    assert "set up already" in stderr


def test_a_changed_pyproject_installs_again(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, uid=0, sudo=False, tools=True)
    assert setup(tmp_path, env)[0] == 0
    with (tmp_path / "repo" / "pyproject.toml").open("a") as pyproject:
        pyproject.write("# a new dependency\n")
    assert setup(tmp_path, env)[:2] == (0, [PIP_INSTALL])
    assert setup(tmp_path, env)[:2] == (0, [])


def test_imagesync_gone_from_the_venv_installs_again(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, uid=0, sudo=False, tools=True)
    assert setup(tmp_path, env)[0] == 0
    (site_packages,) = (tmp_path / "repo" / ".venv" / "lib").glob("python3*/site-packages")
    (site_packages / "_imagesync.pth").unlink()
    assert setup(tmp_path, env)[:2] == (0, [PIP_INSTALL])


def fresh_clone(tmp_path: Path) -> Path:
    """This checkout as a clone of it has it (what git tracks, and what it would track: the
    work in progress too), without .venv or anything else git ignores."""
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        missing_tool("not a git checkout (an unpacked source tree): no clone to make")
    listed = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source, copy = REPO / name, tmp_path / "repo" / name
        if source.is_symlink() or source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy, follow_symlinks=False)
    return tmp_path / "repo"


CHECK = """import imagesync
from pathlib import Path


def test_imagesync_is_this_checkout():
    here = Path(__file__).resolve().parent.parent
    assert Path(imagesync.__file__).resolve().parent == here / "imagesync"
"""


def test_the_readme_commands_from_a_fresh_clone(tmp_path: Path) -> None:
    """scripts/demo, then scripts/test, each twice, as a user with sudo on a bare machine: the
    first runs set up what they need and succeed, the second ones install nothing; the demo
    never calls apt (or sudo)."""
    repo = fresh_clone(tmp_path)
    (repo / "tests" / "test_fresh_clone.py").write_text(CHECK)
    env = fake_machine(tmp_path, uid=1000, sudo=True) | {"FAKE_NO_VENV": "0", "NO_COLOR": "1"}
    assert not (repo / ".venv").exists()

    code, calls, demo = run(tmp_path, env, "demo")
    assert code == 0, demo.stdout + demo.stderr
    assert calls == ["python3 -c import ensurepip, venv", "python3 -m venv .venv", PIP_INSTALL]
    assert "Apply: 1 created, 3 skipped, 0 conflicts, 0 failed." in demo.stdout

    code, calls, again = run(tmp_path, env, "demo")
    assert (code, calls) == (0, []), again.stderr
    assert again.stdout.count("\n") == demo.stdout.count("\n")

    pytest_args = ("-q", "-p", "no:cacheprovider", "tests/test_fresh_clone.py")
    code, calls, tested = run(tmp_path, env, "test", *pytest_args)
    assert code == 0, tested.stdout + tested.stderr
    # The venv is there (the demo made it): the test packages alone, and no pip.
    assert calls == [
        "sudo -n apt-get update",
        "apt-get update (uid 0)",
        "sudo -n apt-get install -y --no-install-recommends ca-certificates " + " ".join(TOOLS),
        "apt-get install -y --no-install-recommends ca-certificates "
        + " ".join(TOOLS)
        + " (uid 0)",
    ]
    assert "1 passed" in tested.stdout

    code, calls, again = run(tmp_path, env, "test", *pytest_args)
    assert (code, calls) == (0, []), again.stderr
    assert "1 passed" in again.stdout


def test_the_demo_with_registries_says_what_to_install(tmp_path: Path) -> None:
    fresh_clone(tmp_path)
    env = fake_machine(tmp_path, uid=1000, sudo=True)
    env["IMAGESYNC_REGISTRY_BINARY"] = str(tmp_path / "bin" / "docker-registry")  # not there
    code, calls, result = run(tmp_path, env, "demo", "--registries")
    assert (code, calls) == (1, [])
    assert "sudo apt-get install docker-registry" in " ".join(result.stderr.split())


def test_readme_and_ci_run_the_same_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Try it.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["scripts/demo", "scripts/test"]
    tests = re.search(r"## Run the tests\n\n```sh\n(.*?)```", readme, re.S)
    assert tests is not None
    assert [line.split("#")[0].strip() for line in tests.group(1).splitlines()] == ["scripts/test"]
    # Debian's package starts a registry of its own: the README says so, and how to stop it.
    said = " ".join(readme.split())
    assert (
        "starts a registry of its own, the `docker-registry` service, listening on port 5000"
        in said
    )
    assert "```sh\nsudo systemctl disable --now docker-registry\n```" in readme
    assert "In a container without systemd it is not started" in said
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nrun scripts/test\n" in ci
    assert "pytest" not in ci.split("\nrun scripts/test\n")[1]  # no other test command
    test = (SCRIPTS / "test").read_text(encoding="utf-8")
    # scripts/test: the set-up, then the README's test command with the arguments given.
    assert "\nscripts/setup\n" in test
    assert test.rstrip().endswith('\nexec .venv/bin/python -m pytest "$@"')
    demo = (SCRIPTS / "demo").read_text(encoding="utf-8")
    assert '"$root/scripts/setup" --no-apt\n' in demo
    for script in ("setup", "demo", "test"):
        assert os.access(SCRIPTS / script, os.X_OK), script


@pytest.mark.parametrize(
    "script",
    [SETUP, SCRIPTS / "demo", SCRIPTS / "test", REPO / ".ci" / "run"],
    ids=["setup", "demo", "test", "ci"],
)
def test_the_scripts_pass_shellcheck(script: Path) -> None:
    shellcheck = require_binary("shellcheck", "shellcheck")
    subprocess.run([shellcheck, str(script)], check=True)
