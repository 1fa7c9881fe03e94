"""skopeo (Debian's 1.9.3) as the independent checker: what imagesync pushed must inspect to the
same digest and copy out cleanly, with another implementation of the registry protocol reading.

References are ``127.0.0.1:PORT/repo:tag`` or ``...@sha256:...`` (``docker://`` is added) or
any ``transport:...`` string. Pass ``registry=`` (a :class:`RegistryServer`) to take TLS trust
and credentials from it; otherwise ``tls_verify=False`` (plain HTTP on loopback), ``creds`` and
``cert_dir`` are explicit. Missing skopeo fails under ``CI=true`` and skips elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.images import RegistryLike
from tests.harness.registry import require_binary

SKOPEO = os.environ.get("IMAGESYNC_SKOPEO_BINARY", "/usr/bin/skopeo")
TIMEOUT = 600.0


class SkopeoError(AssertionError):
    """skopeo exited non-zero; ``stderr`` says why."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"skopeo {' '.join(args)} exited {returncode}:\n{stderr}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class Access:
    """How skopeo reaches one registry."""

    tls_verify: bool = False
    creds: tuple[str, str] | None = None
    cert_dir: Path | None = None

    @classmethod
    def of(
        cls,
        registry: RegistryLike | None = None,
        *,
        tls_verify: bool | None = None,
        creds: tuple[str, str] | None = None,
        cert_dir: Path | None = None,
    ) -> Access:
        if registry is not None:
            has_ca = registry.ca_file is not None
            return cls(
                tls_verify=has_ca if tls_verify is None else tls_verify,
                creds=creds or registry.credentials,
                cert_dir=cert_dir or (registry.ca_file.parent if registry.ca_file else None),
            )
        return cls(bool(tls_verify), creds, cert_dir)

    def flags(self, prefix: str = "") -> list[str]:
        """``--tls-verify`` etc., or ``--src-…`` / ``--dest-…`` with ``prefix`` src / dest."""
        dash = f"--{prefix}-" if prefix else "--"
        flags = [f"{dash}tls-verify={'true' if self.tls_verify else 'false'}"]
        if self.creds:
            flags.append(f"{dash}creds={self.creds[0]}:{self.creds[1]}")
        if self.cert_dir:
            flags.append(f"{dash}cert-dir={self.cert_dir}")
        return flags


def skopeo_binary() -> str:
    return require_binary(SKOPEO, "skopeo", "skopeo")


def transport_reference(reference: str) -> str:
    if reference.startswith(("docker://", "dir:", "oci:", "oci-archive:", "docker-archive:")):
        return reference
    return f"docker://{reference}"


def run(
    *args: str, check: bool = True, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[bytes]:
    """Run skopeo with ``args`` (no policy check: signatures are not what is tested here)."""
    command = [skopeo_binary(), "--insecure-policy", *args]
    result = subprocess.run(
        command, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        raise SkopeoError(args, result.returncode, result.stderr.decode(errors="replace"))
    return result


def inspect_raw(
    reference: str,
    *,
    registry: RegistryLike | None = None,
    tls_verify: bool | None = None,
    creds: tuple[str, str] | None = None,
    cert_dir: Path | None = None,
    config: bool = False,
) -> bytes:
    """The manifest bytes exactly as the registry serves them (``config``: the config blob of a
    single-platform manifest)."""
    access = Access.of(registry, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir)
    extra = ["--config"] if config else []
    return run("inspect", "--raw", *extra, *access.flags(), transport_reference(reference)).stdout


def inspect_digest(
    reference: str,
    *,
    registry: RegistryLike | None = None,
    tls_verify: bool | None = None,
    creds: tuple[str, str] | None = None,
    cert_dir: Path | None = None,
) -> str:
    """sha256 of the manifest bytes skopeo read: the digest a client pulling it would see."""
    raw = inspect_raw(
        reference, registry=registry, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir
    )
    return "sha256:" + hashlib.sha256(raw).hexdigest()


raw_digest = inspect_digest


def inspect(
    reference: str,
    *,
    registry: RegistryLike | None = None,
    tls_verify: bool | None = None,
    creds: tuple[str, str] | None = None,
    cert_dir: Path | None = None,
    platform: str = "linux/amd64",
) -> dict[str, Any]:
    """``skopeo inspect`` JSON (Digest, Architecture, Os, Layers, …) for ``platform`` of a list;
    ``Digest`` is that of the manifest the reference names (the list, for a list)."""
    access = Access.of(registry, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir)
    os_name, arch, *variant = platform.split("/")
    overrides = ["--override-os", os_name, "--override-arch", arch]
    if variant:
        overrides += ["--override-variant", variant[0]]
    output = run(
        *overrides, "inspect", "--no-tags", *access.flags(), transport_reference(reference)
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def list_tags(
    repository: str,
    *,
    registry: RegistryLike | None = None,
    tls_verify: bool | None = None,
    creds: tuple[str, str] | None = None,
    cert_dir: Path | None = None,
) -> list[str]:
    """Tags of ``127.0.0.1:PORT/repo``."""
    access = Access.of(registry, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir)
    output = run("list-tags", *access.flags(), transport_reference(repository)).stdout
    return list(json.loads(output).get("Tags") or [])


def copy_to_dir(
    reference: str,
    directory: Path,
    *,
    registry: RegistryLike | None = None,
    tls_verify: bool | None = None,
    creds: tuple[str, str] | None = None,
    cert_dir: Path | None = None,
) -> Path:
    """Copy every platform into ``directory`` (``dir:`` layout) keeping digests; skopeo checks
    every blob's digest and size on the way, so this fails on an incomplete or corrupt image.
    The top manifest lands in ``directory/manifest.json``."""
    access = Access.of(registry, tls_verify=tls_verify, creds=creds, cert_dir=cert_dir)
    run(
        "copy",
        "--all",
        "--preserve-digests",
        *access.flags("src"),
        transport_reference(reference),
        f"dir:{directory}",
    )
    return directory


def copy(
    source: str,
    destination: str,
    *,
    source_access: Access | None = None,
    destination_access: Access | None = None,
) -> None:
    """Copy every platform from one reference to another, digests preserved."""
    run(
        "copy",
        "--all",
        "--preserve-digests",
        *(source_access or Access()).flags("src"),
        *(destination_access or Access()).flags("dest"),
        transport_reference(source),
        transport_reference(destination),
    )


def sync(
    source_yaml: Path,
    destination: str,
    *,
    destination_access: Access | None = None,
) -> None:
    """``skopeo sync --src yaml`` of every platform (the benchmark's reference run)."""
    run(
        "sync",
        "--all",
        "--preserve-digests",
        "--src",
        "yaml",
        "--dest",
        "docker",
        *(destination_access or Access()).flags("dest"),
        str(source_yaml),
        destination,
    )
