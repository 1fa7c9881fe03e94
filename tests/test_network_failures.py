"""Network failures read as a person says them, with the fix, in every output.

A host that does not resolve (the reserved ``.invalid`` TLD, RFC 6761: the real resolver
says no, with DNS or without), a port nobody listens on, a TLS registry whose CA is not
given, and a server that accepts connections and never answers. Each must read as one
sentence — never requests' or urllib3's repr of the failure — in the plan's text, Markdown
and JSON, and in apply's reports; with ``--retries 1`` there is no word of retries.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from imagesync.cli import main
from tests.harness.images import push_image
from tests.harness.registry import RegistryServer

pytestmark = pytest.mark.registry

# What requests and urllib3 put into their exceptions' text.
LIBRARY_WORDS = (
    "HTTPConnectionPool",
    "HTTPSConnectionPool",
    "Max retries",
    "NameResolutionError",
    "NewConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "SSLError",
    "SSLCertVerificationError",
    "Caused by",
    "urllib3",
    "object at 0x",
    "Errno",
    "_ssl.c",
)
RETRY_WORDS = ("retr", "attempt")


@dataclass(frozen=True)
class Unreachable:
    host: str
    sentence: str


@pytest.fixture
def refusing_port() -> Iterator[str]:
    """127.0.0.1:PORT where a socket is bound and not listening: every connect is refused,
    and no other process can take the port meanwhile."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{bound.getsockname()[1]}"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """127.0.0.1:PORT that completes every TCP handshake (the kernel does, for the listen
    backlog) and never sends a byte."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(64)
        yield f"127.0.0.1:{listening.getsockname()[1]}"


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def images_file(tmp_path: Path, target: RegistryServer, source: str) -> Path:
    path = tmp_path / "external-images.yaml"
    path.write_text(
        f'target: {target.host}/ext\nimages:\n- source: "{source}/team/app:1.0"\n',
        encoding="utf-8",
    )
    return path


def no_library_text(*texts: str, retries: bool = False) -> None:
    for text in texts:
        for word in LIBRARY_WORDS + (() if retries else RETRY_WORDS):
            assert word not in text, f"{word!r} in:\n{text}"


@pytest.fixture(params=["unresolvable", "refused", "untrusted TLS", "silent"])
def unreachable(
    request: pytest.FixtureRequest, refusing_port: str, silent_server: str, tls_registry
) -> Unreachable:
    if request.param == "unresolvable":
        return Unreachable("registry.invalid", "cannot resolve host registry.invalid")
    if request.param == "refused":
        return Unreachable(refusing_port, f"connection refused by {refusing_port}")
    if request.param == "untrusted TLS":
        return Unreachable(
            tls_registry.host,
            f"TLS certificate of {tls_registry.host} is not trusted "
            "(unable to get local issuer certificate)",
        )
    return Unreachable(silent_server, f"no answer from {silent_server} within 1 s")


def test_an_unreachable_source_is_one_sentence_everywhere(
    unreachable: Unreachable, target_registry: RegistryServer, tmp_path: Path
) -> None:
    images = images_file(tmp_path, target_registry, unreachable.host)
    plan_file = tmp_path / "plan.json"
    options = ("--retries", "1", "--timeout", "1")
    planned = run("plan", "-i", str(images), *options, "-o", str(plan_file))
    assert planned.exit_code == 1
    assert "x error" in planned.stdout
    assert f"    reason: {unreachable.sentence} (" in planned.stdout  # then the fix
    (change,) = json.loads(plan_file.read_text(encoding="utf-8"))["changes"]
    assert change["reason"].startswith(f"{unreachable.sentence} (")
    markdown = run("show", str(plan_file), "--format", "markdown").stdout
    assert unreachable.sentence in markdown
    applied = run("apply", str(plan_file), "--format", "json", *options)
    assert applied.exit_code == 1
    (result,) = json.loads(applied.stdout)["images"]
    assert result["outcome"] == "failed" and unreachable.sentence in result["message"]
    no_library_text(planned.output, plan_file.read_text(encoding="utf-8"), markdown, applied.output)


def test_a_source_gone_at_apply_time_is_one_sentence_in_apply_reports(
    source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    push_image(source_registry.host, "team/app", "1.0", layers=1)
    images = images_file(tmp_path, target_registry, source_registry.host)
    plan_file = tmp_path / "plan.json"
    assert run("plan", "-i", str(images), "-o", str(plan_file)).exit_code == 0
    host = source_registry.host
    source_registry.close()
    with socket.socket() as holder:  # the port stays refused: nothing else may take it
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", source_registry.port))
        sentence = f"connection refused by {host}"
        reports = {
            fmt: run("apply", str(plan_file), "--retries", "1", "--format", fmt)
            for fmt in ("text", "json", "markdown")
        }
    for fmt, report in reports.items():
        assert report.exit_code == 1, (fmt, report.output)
        assert sentence in report.stdout, (fmt, report.stdout)
        no_library_text(report.output)


def test_more_attempts_are_counted_in_the_sentence(
    refusing_port: str, target_registry: RegistryServer, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("IMAGESYNC_RETRY_BASE_DELAY", "0.01")
    images = images_file(tmp_path, target_registry, refusing_port)
    planned = run("plan", "-i", str(images), "--retries", "3", "--format", "json")
    (change,) = json.loads(planned.stdout)["changes"]
    assert change["reason"].startswith(f"connection refused by {refusing_port} (3 attempts) (")
    no_library_text(planned.output, retries=True)


def test_a_resolver_that_says_no_is_asked_once(
    target_registry: RegistryServer, tmp_path: Path, monkeypatch
) -> None:
    """A name that does not exist does not start to exist in a second: not retried."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    images = images_file(tmp_path, target_registry, "registry.invalid")
    planned = run("plan", "-i", str(images), "--retries", "5", "--format", "json")
    (change,) = json.loads(planned.stdout)["changes"]
    assert change["reason"].startswith("cannot resolve host registry.invalid (")
    assert asked.count("registry.invalid") == 1


def test_a_target_that_cannot_be_reached_is_one_sentence_too(
    source_registry: RegistryServer, refusing_port: str, tmp_path: Path
) -> None:
    push_image(source_registry.host, "team/app", "1.0", layers=1)
    path = tmp_path / "external-images.yaml"
    path.write_text(
        f'target: {refusing_port}/ext\nimages:\n- source: "{source_registry.host}/team/app:1.0"\n'
    )
    planned = run("sync", "-i", str(path), "--retries", "1")
    assert planned.exit_code == 1
    assert f"connection refused by {refusing_port}" in planned.stdout
    no_library_text(planned.output)
