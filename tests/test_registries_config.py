from __future__ import annotations

from pathlib import Path

import pytest

from imagesync.errors import ConfigError
from imagesync.stores.registry.registries import is_loopback, load_registries_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registries.yaml"
    path.write_text(text)
    return path


def test_settings_are_read(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = load_registries_config(
        write(
            tmp_path,
            "registries:\n  docker.io:\n    mirrors: [mirror.gcr.io]\n"
            "  localhost:5000:\n    insecure: true\n"
            "  registry.internal:\n    ca_file: ca.pem\n    max_concurrency: 4\n",
        )
    )
    assert config.settings("docker.io").mirrors == ("mirror.gcr.io",)
    assert config.settings("registry-1.docker.io").mirrors == ("mirror.gcr.io",)
    assert config.settings("localhost:5000").insecure
    assert config.settings("registry.internal").max_concurrency == 4
    assert config.settings("registry.internal").ca_file == (tmp_path / "ca.pem").resolve()
    assert config.settings("elsewhere.io").max_concurrency == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("registries:\n  a.io:\n    insecur: true\n", "unknown key"),
        ("registries:\n  a.io:\n    max_concurrency: 0\n", "max_concurrency"),
        ("registries:\n  a.io:\n    mirrors: mirror.io\n", "mirrors"),
        ("registries:\n  a.io:\n    ca_file: missing.pem\n", "does not exist"),
        ("registries: [\n", "not valid YAML"),
        ('registries:\n  a.io: "\\U00110000"\n', "not valid YAML"),
        ("registries:\n  a.io:\n    max_concurrency: 2001-13-45\n", "not valid YAML"),
        ("hosts: {}\n", "unknown key 'hosts'"),
        ("hosts: {}\nother: 1\n", "one key"),
    ],
)
def test_bad_configs_are_explained(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_registries_config(write(tmp_path, text))


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1:5000")
    assert is_loopback("localhost:5000")
    assert is_loopback("[::1]:5000")
    assert not is_loopback("10.0.0.1:5000")
    assert not is_loopback("registry.example.com")


def test_signing_and_verification_keys_are_named_relative_to_the_config(tmp_path: Path) -> None:
    config = load_registries_config(
        write(
            tmp_path,
            "registries:\n  registry.internal:\n"
            "    sign: {key: keys/cosign.key, public_key: c.pub}\n"
            "  ghcr.io:\n    verify: {keys: [vendor.pub, /etc/other.pub]}\n",
        )
    )
    sign = config.settings("registry.internal").sign
    assert sign is not None
    assert sign.key == (tmp_path / "keys/cosign.key").resolve()
    assert sign.public_key == (tmp_path / "c.pub").resolve()
    assert config.settings("ghcr.io").verify_keys == (
        (tmp_path / "vendor.pub").resolve(),
        Path("/etc/other.pub"),
    )
    assert config.settings("ghcr.io").sign is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sign: cosign.key", "sign must be a mapping"),
        ("sign: {public_key: c.pub}", "has no key"),
        ("sign: {key: c.key, passphrase: x}", "sign must be a mapping"),
        ("sign: {key: 7}", "sign.key must be a path"),
        ("verify: [a.pub]", "verify must be a mapping with keys"),
        ("verify: {keys: []}", "1 to 64 public keys"),
        ("verify: {keys: [a.pub, 3]}", "verify.keys[1] must be a path"),
    ],
)
def test_bad_key_settings_are_explained(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_registries_config(write(tmp_path, f"registries:\n  a.io:\n    {text}\n"))
    assert message in str(raised.value)
    assert "a.io" in str(raised.value)
