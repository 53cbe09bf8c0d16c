"""Session-wide servers for the operations tests: each starts once and stops at the end."""

from pathlib import Path

import pytest

from tests.ops.services import postgres_server, slurm_cluster


@pytest.fixture(scope="session")
def postgres_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as db:
        yield db


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as conf:
        yield conf
