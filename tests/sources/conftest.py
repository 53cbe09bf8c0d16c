"""One S3-compatible server per test session (see s3_server.py), and the environment that
points s3fs at it the way a deployment does: ``AWS_*`` variables."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import pytest

from tests.sources.s3_server import S3Server, start

_BUCKETS = count()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    process, server = start(tmp_path_factory.mktemp("moto") / "server.log")
    try:
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch) -> S3Server:
    """The server, with this process's environment holding its endpoint and credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A new, empty bucket."""
    name = f"corpora-{next(_BUCKETS)}"
    s3.client().create_bucket(Bucket=name)
    return name
