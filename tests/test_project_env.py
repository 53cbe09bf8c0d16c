"""longattn reads the checkout's .env as the dagster CLI does: over the environment, ${VAR} expanded."""

from __future__ import annotations

import os
from pathlib import Path

from longattn_assets import settings
from longattn_assets.project_env import dagster_home, project_env

REPO = Path(__file__).resolve().parents[1]


def test_env_file_wins_over_the_shell_and_is_undone_afterwards(tmp_path: Path, monkeypatch):
    (tmp_path / ".env").write_text("DAGSTER_HOME=${PWD}/instance\nLONGATTN_DATA_ROOT_DEFAULT=data\n")
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", "/elsewhere")
    monkeypatch.delenv("LONGATTN_DATA_ROOT", raising=False)
    monkeypatch.delenv("LONGATTN_DATA_ROOT_DEFAULT", raising=False)
    monkeypatch.chdir(tmp_path)
    with project_env() as values:
        assert values == {"DAGSTER_HOME": f"{tmp_path}/instance", "LONGATTN_DATA_ROOT_DEFAULT": "data"}
        assert dagster_home() == tmp_path / "instance"
        assert settings.data_root() == tmp_path / "data"
    assert os.environ["DAGSTER_HOME"] == "/elsewhere"
    assert "LONGATTN_DATA_ROOT_DEFAULT" not in os.environ


def test_the_repository_env_names_the_checkout_as_the_instance(monkeypatch):
    monkeypatch.setenv("PWD", str(REPO))
    monkeypatch.delenv("LONGATTN_DATA_ROOT", raising=False)
    monkeypatch.chdir(REPO)
    with project_env():
        assert dagster_home() == REPO
        assert "nux:\n  enabled: false" in (dagster_home() / "dagster.yaml").read_text()
        assert settings.data_root() == REPO / "data"
        assert settings.window_size() == settings.demo_window_size() == 2048
