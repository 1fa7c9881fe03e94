"""The real distribution registry (Debian's ``docker-registry`` 2.8) as a test fixture.

Each server gets a free 127.0.0.1 port, its own storage, config and log in a directory, and is
stopped when the test ends. Variants, through constructor options: no auth (default), htpasswd
basic auth (``users``), TLS with a throw-away CA (``tls``), and any ``auth:`` section passed
through as is (``auth``, e.g. :meth:`tests.harness.tokenserver.TokenServer.registry_auth`).

A real registry rather than a fake: the point of the suite is that imagesync works against what
users run, including the registry's own validation of manifests, uploads and auth.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import bcrypt
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY_BINARY = os.environ.get("IMAGESYNC_REGISTRY_BINARY", "/usr/bin/docker-registry")
START_TIMEOUT = 10.0
# bcrypt's minimum cost: the registry checks the hash on every request, and cost 10 would add
# ~50 ms to each one. These passwords protect nothing.
BCRYPT_ROUNDS = 4
TMPFS_MIN_FREE = 4 * 1024**3  # a container's 64 MiB /dev/shm is not for this


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_tool(message: str) -> NoReturn:
    """Fail under CI (a silently skipped suite is a green build that tested nothing), else skip."""
    if in_ci():
        pytest.fail(f"{message} (CI=true, so this is an error rather than a skip)", pytrace=False)
    pytest.skip(message)


def require_binary(path: str, what: str, package: str | None = None) -> str:
    """``path`` if it is an executable (or a name on PATH); otherwise fail under CI, skip
    elsewhere. ``package`` is the Debian package to name (default: the binary's name)."""
    found = shutil.which(path)
    if found:
        return found
    missing_tool(
        f"{what} ({path}) is not installed; scripts/setup installs it (Debian/Ubuntu: "
        f"`apt-get install -y {package or Path(path).name}`)"
    )


def free_port() -> int:
    """A port that was free a moment ago; :class:`RegistryServer` retries if it was taken since."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost.

    Returns (ca.crt, server cert, server key), PEM. A separate CA (rather than one self-signed
    leaf) is what clients really see, and both Go (skopeo) and OpenSSL accept it without quirks.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagesync test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
    )
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


def storage_parent(tmpfs: bool = True) -> str | None:
    """Where registry storage goes: /dev/shm when asked and it has room, else the temp dir.

    The registry fsyncs every blob and manifest it commits; on a VM disk that is ~20 ms a
    request, 4-5x slower than the rest of the request. Storage in memory keeps the suite fast.
    ``IMAGESYNC_TEST_STORAGE=disk`` turns it off everywhere.
    """
    shm = Path("/dev/shm")
    if not tmpfs or os.environ.get("IMAGESYNC_TEST_STORAGE", "") == "disk":
        return None
    try:
        free = shutil.disk_usage(shm).free
    except OSError:
        return None
    return str(shm) if free >= TMPFS_MIN_FREE and os.access(shm, os.W_OK) else None


def write_htpasswd(path: Path, users: Mapping[str, str]) -> None:
    """An htpasswd file with bcrypt hashes, the only kind the registry accepts."""
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()}\n"
        for user, password in users.items()
    ]
    path.write_text("".join(lines), encoding="utf-8")


class RegistryServer:
    """One running registry.

    ``host`` is ``127.0.0.1:PORT`` (what goes into image references), ``url`` the base URL,
    ``ca_file`` the CA to trust for TLS (None without TLS) and ``cert_dir`` the directory that
    holds only it (for skopeo's ``--cert-dir``), ``credentials`` the first user's
    (user, password) for basic auth (None without ``users``). Use it as a context manager, or
    call :meth:`close`.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        users: Mapping[str, str] | None = None,
        tls: bool = False,
        auth: Mapping[str, Any] | None = None,
        log_level: str = "warn",
        extra_config: Mapping[str, Any] | None = None,
        tmpfs: bool = True,
    ) -> None:
        """Start the registry and wait until ``GET /v2/`` answers.

        ``users`` turns on htpasswd basic auth; ``auth`` is an ``auth:`` config section passed
        through unchanged (token auth); giving both is an error. ``extra_config`` is merged over
        the generated config at the top level (per section, one level deep).

        ``tmpfs``: keep the blob storage in /dev/shm when it has room (see
        :func:`storage_parent`); ``tmpfs=False`` for tests that store GiBs. ``storage`` is the
        storage root either way.
        """
        if users and auth is not None:
            raise ValueError("users (htpasswd) and auth are two auth sections; pick one")
        binary = require_binary(REGISTRY_BINARY, "the distribution registry", "docker-registry")
        self._owns_directory = directory is None
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="imagesync-registry-"))
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.users: dict[str, str] = dict(users or {})
        self.tls = tls
        self.ca_file: Path | None = None
        self.cert_dir: Path | None = None
        self.log_file = directory / "registry.log"
        self.config_file = directory / "config.yml"
        self.scheme = "https" if tls else "http"
        self.port = 0
        self.host = ""
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._config: dict[str, Any] = {}
        self.storage = Path(
            tempfile.mkdtemp(prefix="imagesync-registry-", dir=storage_parent(tmpfs))
        )
        try:
            self._configure(bool(self.users), auth, log_level, extra_config)
            self._start(binary)
        except BaseException:
            self.close()
            raise

    def _configure(
        self,
        htpasswd: bool,
        auth: Mapping[str, Any] | None,
        log_level: str,
        extra_config: Mapping[str, Any] | None,
    ) -> None:
        directory = self.directory
        self._config = {
            "version": 0.1,
            "log": {"level": log_level, "accesslog": {"disabled": log_level != "debug"}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                # The purger walks storage on start-up and every 24 h: nothing to purge here.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            # A secret of our own: without one the registry logs a warning on every start.
            "http": {"secret": secrets.token_hex(16)},
        }
        if self.tls:
            server_dir = directory / "tls"
            server_dir.mkdir(exist_ok=True)
            ca_file, cert_file, key_file = write_test_ca(server_dir)
            # A directory with only the CA: what skopeo's --cert-dir wants (a *.key there
            # would be taken for a client certificate).
            self.cert_dir = directory / "ca"
            self.cert_dir.mkdir(exist_ok=True)
            self.ca_file = self.cert_dir / "ca.crt"
            self.ca_file.write_bytes(ca_file.read_bytes())
            self._config["http"]["tls"] = {"certificate": str(cert_file), "key": str(key_file)}
        if htpasswd:
            htpasswd_file = directory / "htpasswd"
            write_htpasswd(htpasswd_file, self.users)
            self._config["auth"] = {
                "htpasswd": {"realm": "imagesync-test", "path": str(htpasswd_file)}
            }
        if auth is not None:
            self._config["auth"] = dict(auth)
        for section, value in (extra_config or {}).items():
            current = self._config.get(section)
            if isinstance(current, dict) and isinstance(value, Mapping):
                self._config[section] = {**current, **value}
            else:
                self._config[section] = value

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) of the first htpasswd user, or None without basic auth."""
        return next(iter(self.users.items()), None)

    @property
    def username(self) -> str | None:
        return self.credentials[0] if self.credentials else None

    @property
    def password(self) -> str | None:
        return self.credentials[1] if self.credentials else None

    @property
    def verify(self) -> str | bool:
        """``verify=`` for requests: the CA file under TLS, else True (plain HTTP ignores it)."""
        return str(self.ca_file) if self.ca_file else True

    @property
    def config(self) -> dict[str, Any]:
        """The config the registry runs with (a copy)."""
        return yaml.safe_load(self.config_file.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def _start(self, binary: str) -> None:
        # The registry reads REGISTRY_* variables over its config file; none may leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        for _attempt in range(5):
            self.port = free_port()
            self.host = f"127.0.0.1:{self.port}"
            self.url = f"{self.scheme}://{self.host}"
            self._config["http"]["addr"] = self.host
            self.config_file.write_text(yaml.safe_dump(self._config), encoding="utf-8")
            with self.log_file.open("ab") as log:
                self._process = subprocess.Popen(
                    [binary, "serve", str(self.config_file)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            if self._wait_until_ready():
                return
            if "address already in use" not in self.log_tail():
                break
            # Another process took the port between free_port() and the registry's bind.
        self.close()
        pytest.fail(
            f"the registry did not answer GET {self.url}/v2/ within {START_TIMEOUT:.0f} s.\n"
            f"config {self.config_file}, log {self.log_file}:\n{self.log_tail()}",
            pytrace=False,
        )

    def _wait_until_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        with requests.Session() as session:
            session.trust_env = False  # else REQUESTS_CA_BUNDLE would override session.verify
            session.verify = self.verify
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False
                try:
                    # 401 is ready too: an auth-enabled registry challenges anonymous /v2/.
                    if session.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                        return True
                except requests.RequestException:
                    pass
                time.sleep(0.01)
        self._stop_process()
        return False

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the registry's log, for failure messages."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    def session(self) -> requests.Session:
        """A requests session for this registry: TLS trust and basic credentials set."""
        session = requests.Session()
        # Without this, REQUESTS_CA_BUNDLE (and proxy variables) would override the settings.
        session.trust_env = False
        session.verify = self.verify
        if self.credentials:
            session.auth = self.credentials
        return session

    def listing(self) -> frozenset[str]:
        """What the registry stores, as it stores it: every file under its storage root, and
        for a link file (a tag, a manifest or a layer in a repository) the digest it holds.

        Equal listings before and after a command mean the command wrote nothing: no tag
        moved, no manifest, blob or upload session appeared.
        """
        entries = set()
        for path in self.storage.rglob("*"):
            if not path.is_file():
                continue
            name = str(path.relative_to(self.storage))
            if path.name == "link":
                name += "=" + path.read_text(encoding="utf-8", errors="replace")
            entries.add(name)
        return frozenset(entries)

    def reference(self, repository: str, tag_or_digest: str | None = None) -> str:
        """``127.0.0.1:PORT/repository[:tag|@digest]``."""
        if tag_or_digest is None:
            return f"{self.host}/{repository}"
        separator = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repository}{separator}{tag_or_digest}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def close(self) -> None:
        """Stop the registry (terminate, then kill); remove the directory if we made it."""
        self._stop_process()
        shutil.rmtree(self.storage, ignore_errors=True)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        variant = ", ".join(
            v
            for v, on in (
                ("tls", self.tls),
                ("basic", bool(self.users)),
                ("auth", "auth" in self._config and not self.users),
            )
            if on
        )
        return f"RegistryServer({self.url}{', ' + variant if variant else ''})"
