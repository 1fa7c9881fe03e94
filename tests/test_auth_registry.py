"""Auth and TLS against the real registry: htpasswd basic auth, token auth, TLS, plain HTTP.

Every command runs with ``--debug`` (every HTTP request logged), and every test checks that no
secret — password, basic-auth base64, key file content, bearer token — reaches stdout, stderr,
the plan file or an error's text.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import ssl
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from imagesync.cli import main
from imagesync.errors import AuthenticationFailed
from imagesync.reference import parse_reference
from imagesync.stores.connection import ConnectionOptions, open_client
from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.images import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Pushed
from tests.harness.images import push_image as harness_push_image
from tests.harness.registry import RegistryServer, write_test_ca
from tests.harness.tokenserver import SERVICE, TokenServer

pytestmark = pytest.mark.registry

ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
PUSH, PULL = {"pull", "push"}, {"pull"}


def password() -> str:
    # Random and long: the process-wide secret filter must not confuse it with other text.
    return "pw-" + secrets.token_hex(12)


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def gcp_key(project: str = "imagesync-test") -> str:
    """A service-account key shaped like the ones GCP hands out (about 2.3 KB)."""
    private_key = base64.b64encode(secrets.token_bytes(1200)).decode()
    lines = [private_key[i : i + 64] for i in range(0, len(private_key), 64)]
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": f"mirror@{project}.iam.gserviceaccount.com",
            "client_id": str(secrets.randbelow(10**21)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
        },
        indent=2,
    )


class Secrets:
    """Everything that must never be shown, and the check that it is not."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def user(self, user: str, password: str) -> None:
        self.values |= {password, basic(user, password)}

    def key(self, content: str) -> None:
        self.values |= {content, basic("_json_key", content)}
        # Its private key, line by line, and as stored (JSON-escaped newlines).
        private_key = json.loads(content)["private_key"]
        self.values |= {private_key, json.dumps(private_key)[1:-1]}
        self.values |= {line for line in private_key.splitlines() if len(line) > 40}

    def check(self, *texts: str | None, tokens: Iterable[str] = ()) -> None:
        for text in texts:
            if not text:
                continue
            for value in self.values | set(tokens):
                assert value not in text, f"a secret is shown: …{value[:8]}… in\n{text[:3000]}"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def texts(self) -> tuple[str, ...]:
        exception = self.exception
        if exception is None or isinstance(exception, SystemExit):
            return (self.stdout, self.stderr)
        return (
            self.stdout,
            self.stderr,
            str(exception),
            "".join(traceback.format_exception(exception)),
        )


def run(*args: str) -> Run:
    result = CliRunner().invoke(main, list(args))
    return Run(result.exit_code, result.stdout, result.stderr, result.exception)


# Python's HTTP servers (the fault proxy) print a client's dropped keep-alive connection to
# sys.stderr, which the CliRunner captures while it runs: that is not imagesync's output.
_SERVER_NOISE = re.compile(
    r"-{40}\nException occurred during processing of request from .*?\n-{40}\n", re.DOTALL
)


def clean_exit(result: Run, code: int) -> None:
    """Exit ``code``, no traceback, no exception other than the CLI's own exit."""
    assert result.code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in _SERVER_NOISE.sub("", result.output), result.output


def images_file(tmp_path: Path, target: str, *sources: str) -> Path:
    path = tmp_path / "external-images.yaml"
    entries = "".join(f'- source: "{source}"\n' for source in sources)
    path.write_text(f"target: {target}\nimages:\n{entries}", encoding="utf-8")
    return path


def mirrored_path(source_host: str, path: str) -> str:
    return f"mirror/{source_host.replace(':', '-')}/{path}"


def write_docker_config(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    auths: dict[str, tuple[str, str]] | None = None,
    cred_helpers: dict[str, str] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document: dict[str, object] = {}
    if auths:
        document["auths"] = {host: {"auth": basic(*creds)} for host, creds in auths.items()}
    if cred_helpers:
        document["credHelpers"] = cred_helpers
    (directory / "config.json").write_text(json.dumps(document), encoding="utf-8")
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


HELPER = """#!{python}
import json, pathlib, sys
here = pathlib.Path(__file__).parent
server = sys.stdin.read().strip()
with open(here / "helper.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + " " + server + "\\n")
store = json.loads((here / "helper-store.json").read_text())
if sys.argv[1:] != ["get"] or server not in store:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = store[server]
print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
"""


def install_helper(
    directory: Path, monkeypatch: pytest.MonkeyPatch, store: dict[str, tuple[str, str]]
) -> Path:
    """``docker-credential-test`` on PATH, answering ``get`` from ``store``; returns its log."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "docker-credential-test"
    script.write_text(HELPER.format(python=sys.executable), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (directory / "helper-store.json").write_text(json.dumps(store), encoding="utf-8")
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    return directory / "helper.log"


def registries_config(tmp_path: Path, registries: dict[str, dict[str, object]]) -> Path:
    import yaml

    path = tmp_path / "registries.yaml"
    path.write_text(yaml.safe_dump({"registries": registries}), encoding="utf-8")
    return path


def get_manifest(
    session: requests.Session, url: str, repository: str, tag: str, verify: str | bool = True
) -> bytes:
    # verify per request: REQUESTS_CA_BUNDLE in the environment would win over session.verify.
    response = session.get(
        f"{url}/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT}, verify=verify
    )
    assert response.status_code == 200, response.text
    return response.content


def plan_and_apply(
    tmp_path: Path, images: Path, *extra: str, secrets_: Secrets, tokens: Callable[[], list[str]]
) -> tuple[Run, Run]:
    """plan -o plan.json, then apply plan.json, both with --debug; both must succeed."""
    plan_file = tmp_path / "plan.json"
    planned = run("plan", "-i", str(images), "-o", str(plan_file), "--debug", *extra)
    clean_exit(planned, 0)
    assert "Plan: " in planned.stdout and "to create" in planned.stdout
    assert " GET " in planned.stderr or " HEAD " in planned.stderr  # --debug logs requests
    applied = run("apply", str(plan_file), "--debug", "--format", "json", *extra)
    clean_exit(applied, 0)
    report = json.loads(applied.stdout)
    assert {image["outcome"] for image in report["images"]} == {"created"}
    secrets_.check(*planned.texts(), *applied.texts(), plan_file.read_text(), tokens=tokens())
    return planned, applied


def no_tokens() -> list[str]:
    return []


# -- htpasswd basic auth -------------------------------------------------------------------


@dataclass
class BasicSetup:
    source: RegistryServer
    target: RegistryServer
    source_user: tuple[str, str]
    target_user: tuple[str, str]
    key: str
    pushed: Pushed
    secrets: Secrets

    def target_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.target_user
        return session


@pytest.fixture
def basic_registries(tmp_path: Path) -> Iterator[BasicSetup]:
    """A source and a target, both with htpasswd basic auth, and an image in the source.

    The target also knows the user ``_json_key`` with a GCP key as its password. bcrypt only
    looks at the first 72 bytes of a password (Python's bcrypt 5 refuses longer ones, the Go
    registry cuts them), so the htpasswd entry is made from the key's first 72 bytes; the token
    tests check that the full content is what is sent.
    """
    found = Secrets()
    source_user = ("puller", password())
    target_user = ("pusher", password())
    key = gcp_key()
    found.user(*source_user)
    found.user(*target_user)
    found.key(key)
    with (
        RegistryServer(tmp_path / "source", users=dict([source_user])) as source,
        RegistryServer(
            tmp_path / "target", users=dict([target_user, ("_json_key", key[:72])])
        ) as target,
    ):
        pushed = harness_push_image(source.host, "team/app", "1.0", session=source.session())
        yield BasicSetup(source, target, source_user, target_user, key, pushed, found)


def test_registry_cuts_long_basic_passwords_at_72_bytes(basic_registries: BasicSetup) -> None:
    """What the registry does with a password longer than bcrypt's 72 bytes: it compares only
    the first 72, so a JSON key works as an htpasswd password and a changed tail goes unseen."""
    setup = basic_registries
    url = setup.target.url + "/v2/"
    assert requests.get(url, auth=("_json_key", setup.key)).status_code == 200
    assert requests.get(url, auth=("_json_key", setup.key[:72] + "other")).status_code == 200
    assert requests.get(url, auth=("_json_key", setup.key[:71])).status_code == 401


@pytest.mark.parametrize("mode", ["docker-config", "credential-helper", "key-file"])
def test_basic_auth_plan_and_apply(
    basic_registries: BasicSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    setup = basic_registries
    src, dst = setup.source.host, setup.target.host
    extra: list[str] = []
    helper_log = None
    if mode == "docker-config":
        write_docker_config(
            tmp_path / "docker", monkeypatch, {src: setup.source_user, dst: setup.target_user}
        )
    elif mode == "credential-helper":
        helper_log = install_helper(
            tmp_path / "bin", monkeypatch, {src: setup.source_user, dst: setup.target_user}
        )
        write_docker_config(
            tmp_path / "docker", monkeypatch, cred_helpers={src: "test", dst: "test"}
        )
    else:
        key_file = tmp_path / "key.json"
        key_file.write_text(setup.key, encoding="utf-8")
        write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.source_user})
        extra = ["-t", str(key_file)]
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    plan_and_apply(tmp_path, images, *extra, secrets_=setup.secrets, tokens=no_tokens)
    written = get_manifest(
        setup.target_session(), setup.target.url, mirrored_path(src, "team/app"), "1.0"
    )
    assert written == setup.pushed.raw
    if helper_log is not None:
        # Asked once per registry per command (plan, apply), never for anything else.
        asked = helper_log.read_text().splitlines()
        assert sorted(set(asked)) == sorted({f"get {src}", f"get {dst}"})
        assert len(asked) == 4


@pytest.mark.parametrize("mode", ["docker-config", "credential-helper", "key-file", "anonymous"])
def test_wrong_target_credentials_fail_clearly(
    basic_registries: BasicSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    setup = basic_registries
    src, dst = setup.source.host, setup.target.host
    wrong = (setup.target_user[0], password())
    wrong_key = gcp_key("other-project")
    setup.secrets.user(*wrong)
    setup.secrets.key(wrong_key)
    extra: list[str] = []
    if mode == "docker-config":
        write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.source_user, dst: wrong})
    elif mode == "credential-helper":
        install_helper(tmp_path / "bin", monkeypatch, {src: setup.source_user, dst: wrong})
        write_docker_config(
            tmp_path / "docker", monkeypatch, cred_helpers={src: "test", dst: "test"}
        )
    elif mode == "key-file":
        key_file = tmp_path / "key.json"
        key_file.write_text(wrong_key, encoding="utf-8")
        write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.source_user})
        extra = ["-t", str(key_file)]
    else:
        write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.source_user})
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    plan_file = tmp_path / "plan.json"

    planned = run("plan", "-i", str(images), "-o", str(plan_file), "--debug", *extra)
    clean_exit(planned, 1)
    assert f"authentication failed for {dst}" in planned.output
    hint = "log in to" if mode == "anonymous" else "check the credentials from"
    assert hint in planned.output

    # apply, with a plan made with good credentials: the copy fails, with the same message.
    good = tmp_path / "good.json"
    write_docker_config(
        tmp_path / "good-docker", monkeypatch, {src: setup.source_user, dst: setup.target_user}
    )
    clean_exit(run("plan", "-i", str(images), "-o", str(good)), 0)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    applied = run("apply", str(good), "--debug", *extra)
    clean_exit(applied, 1)
    assert f"authentication failed for {dst}" in applied.output

    # The library's own error, as a caller would see (and log) it.
    options = ConnectionOptions(key_file=Path(extra[1]) if extra else None)
    client = open_client(options, dst)
    target = parse_reference(f"{dst}/{mirrored_path(src, 'team/app')}:1.0")
    with pytest.raises(AuthenticationFailed) as caught:
        client.head_manifest(target, pull=False)
    error = caught.value
    error_texts = (str(error), repr(error), "".join(traceback.format_exception(error)))
    assert f"authentication failed for {dst}" in str(caught.value)

    setup.secrets.check(*planned.texts(), plan_file.read_text(), *applied.texts(), *error_texts)


# -- token auth ----------------------------------------------------------------------------


class RecordingTokenServer(TokenServer):
    """Keeps every token it hands out, so tests can check none of them is ever shown."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.tokens: list[str] = []
        self.verify: str | bool = True  # the CA, once served over TLS
        super().__init__(*args, **kwargs)

    def _jwt(self, subject: str, access: list[dict[str, object]]) -> str:
        token = super()._jwt(subject, access)
        with self._lock:
            self.tokens.append(token)
        return token

    def scopes(self, user: str | None = None) -> list[str]:
        """Every scope asked for (by ``user``, if given), in order."""
        with self._lock:
            issued = list(self.issued)
        return [s for who, scopes in issued if user in (None, who) for s in scopes]

    def bearer_session(self, user: str, scope: str) -> requests.Session:
        response = requests.get(
            self.realm,
            params={"service": SERVICE, "scope": scope},
            auth=(user, self.users[user]),
            timeout=10,
            verify=self.verify,
        )
        response.raise_for_status()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {response.json()['token']}"
        return session


@dataclass
class TokenSetup:
    tokens: RecordingTokenServer
    source: RegistryServer
    target: RegistryServer
    writer: tuple[str, str]
    reader: tuple[str, str]
    key: str
    secrets: Secrets

    def push(self, repository: str, tag: str, **kwargs) -> Pushed:  # type: ignore[no-untyped-def]
        session = self.tokens.bearer_session(self.writer[0], f"repository:{repository}:pull,push")
        return harness_push_image(self.source.host, repository, tag, session=session, **kwargs)

    def target_manifest(self, repository: str, tag: str) -> bytes:
        session = self.tokens.bearer_session(self.writer[0], f"repository:{repository}:pull")
        return get_manifest(session, self.target.url, repository, tag)

    def all_tokens(self) -> list[str]:
        return list(self.tokens.tokens)


@pytest.fixture
def token_registries(tmp_path: Path) -> Iterator[TokenSetup]:
    """A source and a target registry in ``auth: token`` mode behind one token server.

    ``writer`` may pull and push everywhere, ``reader`` only pull, ``_json_key`` (a full-size
    GCP key as the password, compared byte for byte) pull and push; anonymous nothing.
    """
    found = Secrets()
    writer, reader, key = ("writer", password()), ("reader", password()), gcp_key()
    found.user(*writer)
    found.user(*reader)
    found.key(key)
    users = dict([writer, reader, ("_json_key", key)])

    def policy(user: str | None, repository: str) -> set[str]:
        return PUSH if user in ("writer", "_json_key") else PULL if user == "reader" else set()

    (tmp_path / "tokens").mkdir()
    tokens = RecordingTokenServer(tmp_path / "tokens", users, policy)
    try:
        with (
            RegistryServer(tmp_path / "source", auth=tokens.registry_auth()) as source,
            RegistryServer(tmp_path / "target", auth=tokens.registry_auth()) as target,
        ):
            yield TokenSetup(tokens, source, target, writer, reader, key, found)
    finally:
        tokens.close()


def test_token_auth_scopes_pull_for_plan_push_for_apply(
    token_registries: TokenSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = token_registries
    src, dst = setup.source.host, setup.target.host
    pushed = setup.push("team/app", "1.0")
    write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.writer, dst: setup.writer})
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    target_repo = mirrored_path(src, "team/app")
    setup.tokens.issued.clear()

    plan_file = tmp_path / "plan.json"
    planned = run("plan", "-i", str(images), "-o", str(plan_file), "--debug")
    clean_exit(planned, 0)
    plan_scopes = set(setup.tokens.scopes("writer"))
    assert plan_scopes == {"repository:team/app:pull", f"repository:{target_repo}:pull"}
    setup.tokens.issued.clear()

    applied = run("apply", str(plan_file), "--debug")
    clean_exit(applied, 0)
    apply_scopes = set(setup.tokens.scopes("writer"))
    assert f"repository:{target_repo}:pull,push" in apply_scopes
    # The source is only ever read; nothing but the target is pushed to.
    assert {s for s in apply_scopes if "push" in s} == {f"repository:{target_repo}:pull,push"}
    assert "repository:team/app:pull" in apply_scopes
    assert setup.target_manifest(target_repo, "1.0") == pushed.raw
    setup.secrets.check(
        *planned.texts(), *applied.texts(), plan_file.read_text(), tokens=setup.all_tokens()
    )


def test_key_file_reaches_the_token_service_whole(
    token_registries: TokenSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-t KEYFILE: basic auth ``_json_key`` with the file's full content (the token server
    compares all of it, unlike bcrypt), for the target only."""
    setup = token_registries
    src, dst = setup.source.host, setup.target.host
    pushed = setup.push("team/app", "1.0")
    key_file = tmp_path / "key.json"
    key_file.write_text(setup.key, encoding="utf-8")
    write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.reader})
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    setup.tokens.issued.clear()
    plan_and_apply(
        tmp_path, images, "-t", str(key_file), secrets_=setup.secrets, tokens=setup.all_tokens
    )
    target_repo = mirrored_path(src, "team/app")
    assert setup.target_manifest(target_repo, "1.0") == pushed.raw
    assert f"repository:{target_repo}:pull,push" in setup.tokens.scopes("_json_key")
    # The key is for the target only: the source is read with the docker config's reader.
    assert all(target_repo in s for s in setup.tokens.scopes("_json_key"))
    assert "repository:team/app:pull" in setup.tokens.scopes("reader")


def test_read_only_credentials_plan_but_apply_says_push_rights_are_missing(
    token_registries: TokenSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = token_registries
    src, dst = setup.source.host, setup.target.host
    setup.push("team/app", "1.0")
    write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.reader, dst: setup.reader})
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    target_repo = mirrored_path(src, "team/app")
    setup.tokens.issued.clear()

    plan_file = tmp_path / "plan.json"
    planned = run("plan", "-i", str(images), "-o", str(plan_file), "--debug")
    clean_exit(planned, 0)
    assert "1 to create" in planned.stdout
    assert all(s.endswith(":pull") for s in setup.tokens.scopes())

    applied = run("apply", str(plan_file), "--debug")
    clean_exit(applied, 1)
    assert f"lack push (write) rights for {dst}/{target_repo}" in applied.output
    assert "authentication failed" not in applied.output
    setup.secrets.check(
        *planned.texts(), *applied.texts(), plan_file.read_text(), tokens=setup.all_tokens()
    )


@pytest.mark.parametrize("user", ["writer", "reader"])
def test_access_token_for_the_target(
    token_registries: TokenSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str
) -> None:
    """--access-token: sent as is to the target (no token dance); a read-only one plans, and
    apply says push rights are missing."""
    setup = token_registries
    src, dst = setup.source.host, setup.target.host
    pushed = setup.push("team/app", "1.0")
    target_repo = mirrored_path(src, "team/app")
    session = setup.tokens.bearer_session(user, f"repository:{target_repo}:pull,push")
    token = session.headers["Authorization"].split(" ", 1)[1]
    assert isinstance(token, str)
    write_docker_config(tmp_path / "docker", monkeypatch, {src: setup.reader})
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    setup.tokens.issued.clear()
    plan_file = tmp_path / "plan.json"
    planned = run(
        "plan", "-i", str(images), "-o", str(plan_file), "--debug", "--access-token", token
    )
    clean_exit(planned, 0)
    applied = run("apply", str(plan_file), "--debug", "--access-token", token)
    # Only the source asked the token service: the target got the given token.
    assert set(setup.tokens.scopes()) == {"repository:team/app:pull"}
    assert all(who == "reader" for who, _ in setup.tokens.issued)
    if user == "writer":
        clean_exit(applied, 0)
        assert setup.target_manifest(target_repo, "1.0") == pushed.raw
    else:
        clean_exit(applied, 1)
        assert f"lack push (write) rights for {dst}/{target_repo}" in applied.output
        assert "--access-token" in applied.output  # where the credentials came from
    setup.secrets.check(
        *planned.texts(), *applied.texts(), plan_file.read_text(), tokens=setup.all_tokens()
    )


@pytest.mark.timeout(120)
def test_token_that_expires_during_a_long_apply_is_renewed(
    token_registries: TokenSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens that die after ~3 s but claim an hour; slow source blobs make apply outlive them."""
    setup = token_registries
    pushed = [
        setup.push("team/app", tag, platforms=[("linux", "amd64")], layers=1, seed=seed)
        for seed, tag in enumerate(["1.0", "2.0", "3.0", "4.0"], start=1)
    ]
    with FaultProxy(setup.source.host) as slow_source:
        src, dst = slow_source.host, setup.target.host
        write_docker_config(
            tmp_path / "docker", monkeypatch, {src: setup.writer, dst: setup.writer}
        )
        images = images_file(
            tmp_path, f"{dst}/mirror", *(f"{src}/team/app:{p.tag}" for p in pushed)
        )
        plan_file = tmp_path / "plan.json"
        planned = run("plan", "-i", str(images), "-o", str(plan_file), "--debug")
        clean_exit(planned, 0)
        # Each token is good for 4-5 s (whole seconds): several delayed requests, so a fresh
        # token still arrives alive on a loaded machine; the apply (8 delayed blob reads, one
        # at a time) outlives it.
        setup.tokens.lifetime, setup.tokens.advertised_lifetime = 5.0, 3600.0
        setup.tokens.issued.clear()
        slow_source.add(Fault("delay", r"/blobs/sha256:", count=100, method="GET", seconds=1.0))
        started = time.monotonic()
        applied = run("apply", str(plan_file), "--debug", "--parallelism", "1")
        elapsed = time.monotonic() - started
    clean_exit(applied, 0)
    assert "Apply: 4 created" in applied.stdout
    assert elapsed > 6, "the apply did not outlive the tokens; the test shows nothing"
    target_repo = mirrored_path(src, "team/app")
    push = f"repository:{target_repo}:pull,push"
    assert setup.tokens.scopes("writer").count(push) >= 2, "the push token was never renewed"
    assert setup.tokens.scopes("writer").count("repository:team/app:pull") >= 2
    for image in pushed:
        assert image.tag is not None
        assert setup.target_manifest(target_repo, image.tag) == image.raw
    setup.secrets.check(
        *planned.texts(), *applied.texts(), plan_file.read_text(), tokens=setup.all_tokens()
    )


@pytest.mark.timeout(120)
def test_token_that_expires_during_a_blob_upload_restarts_the_upload(
    token_registries: TokenSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry refuses a streamed upload whose token died on the way: the spent stream
    cannot be sent again, so the blob copy starts over with a fresh token — promptly."""
    setup = token_registries
    pushed = setup.push(
        "team/app", "1.0", platforms=[("linux", "amd64")], layers=1, layer_size=256 * 1024
    )
    with FaultProxy(setup.target.host) as slow_target:
        src, dst = setup.source.host, slow_target.host
        write_docker_config(
            tmp_path / "docker", monkeypatch, {src: setup.writer, dst: setup.writer}
        )
        images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
        plan_file = tmp_path / "plan.json"
        clean_exit(run("plan", "-i", str(images), "-o", str(plan_file)), 0)
        setup.tokens.lifetime, setup.tokens.advertised_lifetime = 2.0, 3600.0
        # The proxy holds the first blob upload's bytes for 3 s before passing them on.
        slow_target.add(Fault("delay", r"/blobs/uploads/.", count=1, method="PUT", seconds=3.0))
        started = time.monotonic()
        applied = run("apply", str(plan_file), "--debug", "--parallelism", "1")
        elapsed = time.monotonic() - started
        uploads = [r for r in slow_target.requests if r.method == "PUT" and "/blobs/" in r.path]
    clean_exit(applied, 0)
    assert uploads[0].status == 401, "the token did not expire during the upload"
    assert elapsed < 30, f"apply took {elapsed:.0f} s: a spent upload stream was sent again"
    target_repo = mirrored_path(src, "team/app")
    assert setup.target_manifest(target_repo, "1.0") == pushed.raw
    setup.secrets.check(*applied.texts(), tokens=setup.all_tokens())


# -- TLS and plain HTTP --------------------------------------------------------------------


@pytest.fixture
def tls_registries(tmp_path: Path) -> Iterator[BasicSetup]:
    """A TLS source (no auth) and a TLS target with basic auth, each with its own test CA."""
    found = Secrets()
    target_user = ("pusher", password())
    found.user(*target_user)
    with (
        RegistryServer(tmp_path / "source", tls=True) as source,
        RegistryServer(tmp_path / "target", tls=True, users=dict([target_user])) as target,
    ):
        pushed = harness_push_image(
            source.host, "team/app", "1.0", session=source.session(), scheme="https"
        )
        yield BasicSetup(source, target, ("", ""), target_user, "", pushed, found)


def test_tls_without_the_ca_fails_clearly(
    tls_registries: BasicSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = tls_registries
    src, dst = setup.source.host, setup.target.host
    write_docker_config(tmp_path / "docker", monkeypatch, {dst: setup.target_user})
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    plan_file = tmp_path / "plan.json"
    planned = run("plan", "-i", str(images), "-o", str(plan_file), "--debug")
    clean_exit(planned, 1)
    # The source is read first, so its error is the one the entry shows: the sentence and
    # OpenSSL's reason, never requests' repr of it.
    untrusted = f"TLS certificate of {src} is not trusted (unable to get local issuer certificate)"
    assert untrusted in planned.output
    assert f"give the registry's CA with 'ca_file' for {src}" in planned.output
    assert "SSLError" not in planned.output and "Max retries" not in planned.output
    assert untrusted in plan_file.read_text()
    # The source's CA given, not the target's: now the target fails, with the same advice.
    assert setup.source.ca_file is not None
    config = registries_config(tmp_path, {src: {"ca_file": str(setup.source.ca_file)}})
    partly = run("plan", "-i", str(images), "--registries-config", str(config), "--debug")
    clean_exit(partly, 1)
    assert f"TLS certificate of {dst} is not trusted" in partly.output
    assert f"'ca_file' for {dst}" in partly.output
    assert f"TLS certificate of {src}" not in partly.output
    setup.secrets.check(*planned.texts(), plan_file.read_text(), *partly.texts())


def test_tls_with_ca_file_plans_and_applies(
    tls_registries: BasicSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = tls_registries
    src, dst = setup.source.host, setup.target.host
    write_docker_config(tmp_path / "docker", monkeypatch, {dst: setup.target_user})
    assert setup.source.ca_file is not None and setup.target.ca_file is not None
    # A path relative to the config's folder, and an absolute one.
    (tmp_path / "source-ca.pem").write_bytes(setup.source.ca_file.read_bytes())
    config = registries_config(
        tmp_path,
        {src: {"ca_file": "source-ca.pem"}, dst: {"ca_file": str(setup.target.ca_file)}},
    )
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    planned, applied = plan_and_apply(
        tmp_path,
        images,
        "--registries-config",
        str(config),
        secrets_=setup.secrets,
        tokens=no_tokens,
    )
    for result in (planned, applied):
        assert f"https://{dst}/v2/" in result.stderr and f"http://{dst}" not in result.stderr
        assert f"https://{src}/v2/" in result.stderr and f"http://{src}" not in result.stderr
    written = get_manifest(
        setup.target_session(),
        setup.target.url,
        mirrored_path(src, "team/app"),
        "1.0",
        verify=str(setup.target.ca_file),
    )
    assert written == setup.pushed.raw


def serve_over_tls(tokens: RecordingTokenServer, directory: Path) -> Path:
    """Move a token server to HTTPS with a certificate from a new test CA; returns the CA."""
    handler = tokens._server.RequestHandlerClass
    tokens._server.shutdown()
    tokens._server.server_close()
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = write_test_ca(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    tokens._server = server
    tokens.realm = f"https://127.0.0.1:{server.server_address[1]}/token"
    tokens.verify = str(ca_file)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return ca_file


def test_token_service_on_the_registry_host_uses_its_ca_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS registry with token auth whose token service is on the same host (Harbor's
    layout), both under a private CA: the registry's ca_file is trusted for the token too."""
    writer = ("writer", password())
    found = Secrets()
    found.user(*writer)
    (tmp_path / "tokens").mkdir()
    tokens = RecordingTokenServer(tmp_path / "tokens", dict([writer]), lambda user, _: PUSH)
    try:
        token_ca = serve_over_tls(tokens, tmp_path / "tokens" / "tls")
        with (
            RegistryServer(tmp_path / "source") as source,
            RegistryServer(tmp_path / "target", tls=True, auth=tokens.registry_auth()) as target,
        ):
            assert target.ca_file is not None
            pushed = harness_push_image(source.host, "team/app", "1.0")
            src, dst = source.host, target.host
            write_docker_config(tmp_path / "docker", monkeypatch, {dst: writer})
            images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")

            # The registry's CA alone: the registry is trusted, its token service is not.
            only_registry = registries_config(tmp_path, {dst: {"ca_file": str(target.ca_file)}})
            failed = run("plan", "-i", str(images), "--registries-config", str(only_registry))
            clean_exit(failed, 1)
            realm = tokens.realm.split("/")[2]
            assert (
                f"cannot get a token for {dst}: TLS certificate of {realm} is not trusted"
            ) in failed.output

            bundle = tmp_path / "bundle.pem"
            bundle.write_bytes(target.ca_file.read_bytes() + token_ca.read_bytes())
            config = registries_config(tmp_path, {dst: {"ca_file": str(bundle)}})
            plan_and_apply(
                tmp_path,
                images,
                "--registries-config",
                str(config),
                secrets_=found,
                tokens=lambda: list(tokens.tokens),
            )
            target_repo = mirrored_path(src, "team/app")
            assert f"repository:{target_repo}:pull,push" in tokens.scopes("writer")
            session = tokens.bearer_session("writer", f"repository:{target_repo}:pull")
            written = get_manifest(
                session, target.url, target_repo, "1.0", verify=str(target.ca_file)
            )
            assert written == pushed.raw
    finally:
        tokens.close()


def test_insecure_registries_use_plain_http(tmp_path: Path) -> None:
    with (
        RegistryServer(tmp_path / "source") as source,
        RegistryServer(tmp_path / "target") as target,
    ):
        pushed = harness_push_image(source.host, "team/app", "1.0")
        src, dst = source.host, target.host
        config = registries_config(tmp_path, {src: {"insecure": True}, dst: {"insecure": True}})
        images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
        planned, applied = plan_and_apply(
            tmp_path,
            images,
            "--registries-config",
            str(config),
            secrets_=Secrets(),
            tokens=no_tokens,
        )
        for result in (planned, applied):
            assert f"http://{dst}/v2/" in result.stderr
            assert "https://" not in result.stderr
        written = get_manifest(
            requests.Session(), target.url, mirrored_path(src, "team/app"), "1.0"
        )
        assert written == pushed.raw


def test_insecure_is_plain_http_even_for_a_tls_registry(tls_registries: BasicSetup, tmp_path):
    """``insecure: true`` means plain HTTP, not "skip verification": a TLS registry listed so
    answers 400 and the plan says the registry could not be read, without a traceback."""
    setup = tls_registries
    src, dst = setup.source.host, setup.target.host
    config = registries_config(tmp_path, {src: {"insecure": True}})
    images = images_file(tmp_path, f"{dst}/mirror", f"{src}/team/app:1.0")
    planned = run("plan", "-i", str(images), "--registries-config", str(config))
    clean_exit(planned, 1)
    assert src in planned.output
