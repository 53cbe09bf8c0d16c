"""Session-wide servers for the operations tests: each starts once and stops at the end."""

import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.ops.services import postgres_server, slurm_cluster


@pytest.fixture(scope="session")
def postgres_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as db:
        yield db


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as conf:
        yield conf


DEPLOY_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster-postgres.yaml"


@pytest.fixture
def postgres_instance(postgres_db: dict, monkeypatch: pytest.MonkeyPatch):
    """A Dagster instance configured by deploy/dagster-postgres.yaml, on a fresh database of the test server."""
    import psycopg2

    db_name = f"dagster_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(
        host=postgres_db["hostname"], port=postgres_db["port"], user=postgres_db["username"],
        password=postgres_db["password"], dbname=postgres_db["db_name"],
    )  # fmt: skip
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {db_name}")
    admin.close()
    for name, key in [("HOST", "hostname"), ("PORT", "port"), ("USER", "username"), ("PASSWORD", "password")]:
        monkeypatch.setenv(f"DAGSTER_PG_{name}", str(postgres_db[key]))
    monkeypatch.setenv("DAGSTER_PG_DB", db_name)
    with dg.instance_for_test(overrides=yaml.safe_load(DEPLOY_YAML.read_text())) as instance:
        yield instance
