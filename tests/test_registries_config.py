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
