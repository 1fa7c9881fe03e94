"""Credential lookup: precedence, docker config forms, credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from imagesync.errors import ConfigError
from imagesync.stores.registry.auth import JSON_KEY_USER, CredentialStore


def config(tmp_path: Path, document: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


def encoded(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auths_forms(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": encoded("hub", "hubpw")},
                "reg.io": {"username": "u", "password": "p"},
                "https://tok.io": {"identitytoken": "refresh-token"},
            }
        },
    )
    store = CredentialStore(config_paths=[path])
    assert store.for_registry("docker.io").password == "hubpw"
    assert store.for_registry("registry-1.docker.io").username == "hub"
    assert store.for_registry("reg.io").username == "u"
    assert store.for_registry("tok.io").identity_token == "refresh-token"
    assert store.for_registry("other.io").is_anonymous


def test_target_flags_win_for_the_target_only(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account"}')
    path = config(tmp_path, {"auths": {"reg.io": {"auth": encoded("u", "p")}}})
    store = CredentialStore(target_registry="reg.io", key_file=key, config_paths=[path])
    assert store.for_registry("reg.io").username == JSON_KEY_USER
    assert store.for_registry("reg.io").password == key.read_text()
    token_store = CredentialStore("reg.io", access_token="tkn", key_file=key, config_paths=[path])
    assert token_store.for_registry("reg.io").bearer == "tkn"
    assert token_store.for_registry("src.io").is_anonymous


def test_bad_key_file_is_a_config_error(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text("not json")
    with pytest.raises(ConfigError, match="not JSON"):
        CredentialStore(target_registry="reg.io", key_file=key)
    with pytest.raises(ConfigError, match="cannot read"):
        CredentialStore(target_registry="reg.io", key_file=tmp_path / "missing.json")


def test_credential_helper_is_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "docker-credential-fake"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        'if [ "$server" = "reg.io" ]; then echo \'{"Username":"hu","Secret":"hs"}\'; '
        "else echo 'credentials not found' >&2; exit 1; fi\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    path = config(tmp_path, {"credHelpers": {"reg.io": "fake"}, "credsStore": "fake"})
    store = CredentialStore(config_paths=[path])
    assert store.for_registry("reg.io").password == "hs"
    assert store.for_registry("other.io").is_anonymous


def test_missing_helper_is_explained(tmp_path: Path) -> None:
    path = config(tmp_path, {"credsStore": "does-not-exist"})
    with pytest.raises(ConfigError, match="not on PATH"):
        CredentialStore(config_paths=[path]).for_registry("reg.io")


def test_docker_config_env_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, {"auths": {"reg.io": {"auth": encoded("envuser", "pw")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert CredentialStore().for_registry("reg.io").username == "envuser"
