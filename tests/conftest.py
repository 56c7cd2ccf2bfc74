"""Shared test fixtures. Tests never reach the network: only 127.0.0.1 services the tests start themselves."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config.models import default_archive_path

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address) -> None:  # type: ignore[no-untyped-def]
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
        raise OSError(f"tests must not reach the network (tried to connect to {address!r})")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> Iterator[None]:
    socket.socket.connect = _loopback_only  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def archive_root() -> Path:
    """The embedded archive (built here if missing or stale; `make test` builds it beforehand)."""
    from pipeline.archive.build import build_archive, is_current

    root = default_archive_path()
    if not is_current(root):
        build_archive(root)
    return root


@pytest.fixture(scope="session")
def served_geoparquet(archive_root: Path):  # type: ignore[no-untyped-def]
    from pipeline.archive.serve import serve_archive

    with serve_archive(archive_root, api="geoparquet") as ep:
        yield ep


@pytest.fixture(scope="session")
def served_pgstac(archive_root: Path):  # type: ignore[no-untyped-def]
    from pipeline.archive.serve import serve_archive

    with serve_archive(archive_root, api="pgstac") as ep:
        yield ep
