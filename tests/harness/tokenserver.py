"""A token server for the distribution registry's ``auth: token`` mode, on loopback.

It issues RS256 JWTs with an ``x5c`` header whose certificate is the registry's
``rootcertbundle``, granting each user the actions a policy allows. Tests use it for the
bearer-token flow: scopes per repository, read-only users, tokens that expire mid-run.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE = "imagesync-test-registry"
ISSUER = "imagesync-test-token-server"

# user -> actions granted on every repository; None is the anonymous user.
Policy = Callable[[str | None, str], set[str]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(
        self,
        directory: Path,
        users: dict[str, str],
        policy: Policy,
        lifetime: float = 300.0,
        advertised_lifetime: float | None = None,
    ) -> None:
        """``lifetime`` is how long a JWT is valid for the registry (which allows 60 s of clock
        skew on top); ``advertised_lifetime`` is the ``expires_in`` told to the client."""
        self.users = users
        self.policy = policy
        self.lifetime = lifetime
        self.advertised_lifetime = advertised_lifetime or lifetime
        self.issued: list[tuple[str | None, list[str]]] = []
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = directory / "token-root.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                server._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def registry_auth(self) -> dict[str, object]:
        """The ``auth:`` section of the registry's config."""
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.cert_file),
            }
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _user(self, header: str | None) -> str | bool | None:
        """The authenticated user, None for anonymous, False for wrong credentials."""
        if not header:
            return None
        if not header.lower().startswith("basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else False

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(request.path).query)
        user = self._user(request.headers.get("Authorization"))
        if user is False:
            request.send_response(401)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        assert user is not True
        access = []
        for scope in query.get("scope", []):
            for part in scope.split(" "):
                kind, _, rest = part.partition(":")
                name, _, actions = rest.rpartition(":")
                allowed = self.policy(user, name)
                granted = sorted(a for a in actions.split(",") if a in allowed)
                access.append({"type": kind, "name": name, "actions": granted})
        with self._lock:
            self.issued.append((user, query.get("scope", [])))
        token = self._jwt(user or "", access)
        # The token spec's expires_in is integer seconds (skopeo rejects 300.0); at least 1,
        # since a client reads 0 as "not given" and assumes 60.
        expires_in = max(1, int(self.advertised_lifetime))
        body = json.dumps(
            {"token": token, "access_token": token, "expires_in": expires_in}
        ).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _jwt(self, subject: str, access: list[dict[str, object]]) -> str:
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        # The registry adds 60 s of leeway to exp; take it off so `lifetime` is what counts.
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "iat": now,
            "nbf": now - 1,
            "exp": now + int(self.lifetime) - 60,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"
