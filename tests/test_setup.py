"""scripts/setup, the README's set-up command and the first step of .ci/run: it runs as written
where the user is root without sudo (containers, CI images) and where the user has sudo.

apt-get, sudo, id and python3 are stand-ins on PATH that record what they were asked to do
(nothing is installed); everything else is the real script, run by the real bash."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness.registry import require_binary

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "scripts" / "setup"
BASH = shutil.which("bash") or "/bin/bash"
MKDIR, COPY = shutil.which("mkdir") or "/bin/mkdir", shutil.which("cp") or "/bin/cp"
PACKAGES = "ca-certificates docker-registry skopeo shellcheck python3-venv"

FAKES = {
    "id": 'echo "$FAKE_UID"\n',
    "sudo": 'echo "sudo $*" >>"$LOG"\n[ "$1" = -n ] && shift\nFAKE_UID=0 exec "$@"\n',
    "apt-get": 'echo "apt-get $* (uid $(id -u))" >>"$LOG"\n',
    "python3": (
        'echo "python3 $*" >>"$LOG"\n'
        'case "$1" in\n'
        '  -c) exit "${FAKE_NO_VENV:-1}" ;;\n'
        f'  -m) {MKDIR} -p .venv/bin && {COPY} "$FAKE_VENV_PYTHON" .venv/bin/python ;;\n'
        "esac\n"
    ),
}
VENV_PYTHON = 'echo "venv-python $*" >>"$LOG"\n'


def fake_machine(tmp_path: Path, *, uid: int, sudo: bool, tools: bool = False) -> dict[str, str]:
    """A checkout of the script and a PATH of stand-ins: a bare Debian machine."""
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, tmp_path / "repo" / "scripts" / "setup")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = dict(FAKES)
    if not sudo:
        del fakes["sudo"]
    if tools:
        fakes |= {name: "exit 0\n" for name in ("docker-registry", "skopeo", "shellcheck")}
    for name, body in {**fakes, "venv-python": VENV_PYTHON}.items():
        path = bin_dir / name
        path.write_text(f"#!{BASH}\n{body}")
        path.chmod(0o755)
    return {
        "PATH": str(bin_dir),
        "LOG": str(tmp_path / "log"),
        "FAKE_UID": str(uid),
        "FAKE_VENV_PYTHON": str(bin_dir / "venv-python"),
        "HOME": str(tmp_path),
    }


def setup(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, list[str], str]:
    result = subprocess.run(
        [BASH, str(tmp_path / "repo" / "scripts" / "setup"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    log = tmp_path / "log"
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls, result.stderr


def test_as_root_without_sudo(tmp_path: Path) -> None:
    code, calls, stderr = setup(tmp_path, fake_machine(tmp_path, uid=0, sudo=False))
    assert code == 0, stderr
    assert calls == [
        "python3 -c import ensurepip, venv",
        "apt-get update (uid 0)",
        f"apt-get install -y --no-install-recommends {PACKAGES} (uid 0)",
        "python3 -m venv .venv",
        "venv-python -c import sys; sys.exit(sys.version_info < (3, 11))",
        "venv-python -m pip install --quiet -e .[dev]",
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
    assert calls[-1] == "venv-python -m pip install --quiet -e .[dev]"
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
    assert not any(call.startswith(("apt-get", "sudo")) for call in calls)
    assert "python3 -m venv .venv" in calls


def test_a_second_run_installs_nothing(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, uid=0, sudo=False, tools=True)
    assert setup(tmp_path, env)[0] == 0
    (tmp_path / "log").unlink()
    code, calls, _ = setup(tmp_path, env)
    assert code == 0
    assert calls == [
        "venv-python -c import sys; sys.exit(sys.version_info < (3, 11))",
        "venv-python -m pip install --quiet -e .[dev]",
    ]


def test_readme_and_ci_run_the_same_set_up() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Try it.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == [
        "scripts/setup",
        ".venv/bin/python examples/demo.py",
        ".venv/bin/python -m pytest",
    ]
    # Debian's package starts a registry of its own: the README says so, and how to stop it.
    said = " ".join(readme.split())
    assert (
        "starts a registry of its own, the `docker-registry` service, listening on port 5000"
        in said
    )
    assert "```sh\nsudo systemctl disable --now docker-registry\n```" in readme
    assert "In a container without systemd it is not started" in said
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nrun scripts/setup\n" in ci
    assert '\nrun "$py" -m pytest\n' in ci
    assert os.access(SETUP, os.X_OK)


@pytest.mark.parametrize("script", [SETUP, REPO / ".ci" / "run"])
def test_the_scripts_pass_shellcheck(script: Path) -> None:
    shellcheck = require_binary("shellcheck", "shellcheck")
    subprocess.run([shellcheck, str(script)], check=True)
