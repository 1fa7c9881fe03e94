"""The real distribution registry (Debian's ``docker-registry``) as a test fixture.

Each server gets a free 127.0.0.1 port, its own temporary storage and config, and is stopped
when the test ends. Variants: no auth, htpasswd basic auth, token auth, TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REGISTRY_BINARY = os.environ.get("IMAGESYNC_REGISTRY_BINARY", "/usr/bin/docker-registry")
INSTALL_HINT = "install it with: sudo apt-get install -y docker-registry skopeo"


def require_binary(path: str, what: str) -> str:
    """The binary's path; fails under CI=true (it must be there), skips elsewhere."""
    found = shutil.which(path) or (path if os.access(path, os.X_OK) else None)
    if found:
        return found
    message = f"{what} ({path}) is not installed; {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagesync test registry")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class RegistryServer:
    """One running registry. ``host`` is ``127.0.0.1:PORT``; ``url`` its base URL."""

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        auth: dict[str, Any] | None = None,
    ) -> None:
        binary = require_binary(REGISTRY_BINARY, "the distribution registry")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.users = users or {}
        self.ca_file: Path | None = None
        http: dict[str, Any] = {"addr": self.host, "secret": "imagesync-test"}
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(directory / "storage")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if tls:
            cert_file, key_file = self_signed_certificate(directory)
            http["tls"] = {"certificate": str(cert_file), "key": str(key_file)}
            self.ca_file = cert_file
        if self.users:
            htpasswd = directory / "htpasswd"
            htpasswd.write_text(
                "".join(
                    f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
                    for user, pw in self.users.items()
                )
            )
            config["auth"] = {"htpasswd": {"realm": "imagesync-test", "path": str(htpasswd)}}
        if auth is not None:
            config["auth"] = auth
        self.config_file = directory / "config.yml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.log_file = directory / "registry.log"
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://{self.host}"
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                response = requests.get(
                    f"{self.url}/v2/", timeout=1, verify=str(self.ca_file or True)
                )
                if response.status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.close()
        pytest.fail(f"the registry did not start on {self.host}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def session(self) -> requests.Session:
        """A requests session that can talk to this registry (TLS trust, basic auth)."""
        session = requests.Session()
        if self.ca_file:
            session.verify = str(self.ca_file)
        if self.users:
            user, password = next(iter(self.users.items()))
            session.auth = (user, password)
        return session

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
