"""A fresh checkout, the README's commands as written: the demo, the CLI and the UI share one
instance and one data root, and the UI (in headless Chromium) shows the demo's runs and plots.

The checkout is a copy of the repository's tracked files with no DAGSTER_HOME in the
environment: only its .env says where the instance is, as for a person who just cloned it.
The corpus is the tiny one and one category, so the whole path takes a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from longattn_assets.report.plots import BACKGROUNDS
from tests.ops.tiny import tiny_corpus
from tests.report.test_browser import find_chromium, pixels_near

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def fresh_checkout(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    for name in files.decode().split("\0"):
        if name and (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def shell_env(cwd: Path) -> dict[str, str]:
    """The environment of a shell in ``cwd`` with the venv on PATH and nothing else set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LONGATTN_", "DAGSTER_"))}
    env.update(PWD=str(cwd), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", LONGATTN_CATEGORIES="code")
    return env


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["data"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_cli_and_ui_share_one_instance_and_the_ui_shows_runs_and_plots(tmp_path: Path):
    chromium = find_chromium()
    checkout = fresh_checkout(tmp_path / "longattn_assets")
    env = shell_env(checkout)
    corpus = tiny_corpus(tmp_path / "input")
    demo = subprocess.run(
        ["longattn", "demo", "--input-dir", str(corpus), "--window-size", "64", "--device", "cpu"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert f"Dagster instance: {checkout}" in demo.stdout
    assert (checkout / "data/longabc_report/category=code/report.html").is_file()
    assert (checkout / "history/runs.db").is_file() and not (checkout / "data/.dagster").exists()

    # The CLI, as the README writes it, records its run in the same instance.
    cli = subprocess.run(
        ["dagster", "asset", "materialize", "-m", "longattn_assets.definitions",
         "--select", "longabc_report", "--partition", "code"],
        cwd=checkout, env={**env, "LONGATTN_INPUT_DIR": str(corpus)}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "Non-compliant tag keys" not in cli.stderr

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "dev.log").open("w")
    dev = subprocess.Popen(
        ["dagster", "dev", "-w", "workspace.yaml", "-p", str(port)],
        cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=5)
                break
            except OSError:
                assert dev.poll() is None and time.monotonic() < deadline, (tmp_path / "dev.log").read_text()[-3000:]
                time.sleep(2)
        data = graphql(
            url,
            "{ shouldShowNux runsOrError { ... on Runs { results { runId } } } "
            "assetNodes { assetKey { path } partitionStats { numMaterialized numPartitions } } }",
        )
        assert data["shouldShowNux"] is False
        stats = {"/".join(n["assetKey"]["path"]): n["partitionStats"] for n in data["assetNodes"]}
        assert stats["windowed_chunks"] == stats["scored_chunks"] == {"numMaterialized": 4, "numPartitions": 4}
        for asset in ("raw_corpus", "scorer_diagnostics", "longabc_dataset", "longabc_report"):
            assert stats[asset] == {"numMaterialized": 1, "numPartitions": 1}
        run_ids = [r["runId"] for r in data["runsOrError"]["results"]]
        assert len(run_ids) == 8  # the demo's seven steps (diagnostics included) and the CLI's run

        browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--hide-scrollbars", "--force-device-scale-factor=1",
                   f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000"]  # fmt: skip
        runs_page = subprocess.run(
            [*browser, "--dump-dom", f"{url}/runs"], capture_output=True, text=True, timeout=300, check=True
        ).stdout
        assert all(run_id[:8] in runs_page for run_id in run_ids)
        shot = tmp_path / "metadata.png"
        subprocess.run(
            [*browser, "--window-size=1400,1400", f"--screenshot={shot}",
             f"{url}/assets/longabc_report?view=partitions&partition=code"],
            capture_output=True, timeout=300, check=True,
        )  # fmt: skip
        image = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
        for name in ("ds", "du", "lds"):  # each inline histogram's own tint, drawn in place
            assert pixels_near(image, BACKGROUNDS[name]) > 10_000, f"{name} histogram not shown"
    finally:
        # What Ctrl-C does: SIGINT to the process group (dagster dev ignores SIGTERM's intent).
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        log.close()


def test_a_demo_with_another_data_root_keeps_its_runs_beside_that_root(tmp_path: Path):
    """`longattn demo --data-root DIR` from the checkout: the checkout's UI describes ./data, so
    the runs of DIR go to an instance beside DIR (and the demo says how to open it)."""
    checkout = fresh_checkout(tmp_path / "longattn_assets")
    other = tmp_path / "elsewhere"
    demo = subprocess.run(
        ["longattn", "demo", "--data-root", str(other), "--input-dir", str(tiny_corpus(tmp_path / "input")),
         "--window-size", "64", "--device", "cpu"],
        cwd=checkout, env=shell_env(checkout), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert f"Dagster instance: {other / '.dagster'}\n" in demo.stdout
    assert (other / ".dagster/history/runs.db").is_file()
    assert not (checkout / "history").exists() and not (checkout / "data").exists()
    assert demo.stdout.rstrip().endswith(
        f"its runs in the UI: cd {other} && DAGSTER_HOME={other / '.dagster'} LONGATTN_DATA_ROOT={other} "
        f"LONGATTN_WINDOW_SIZE=64 {BIN / 'dagster'} dev -m longattn_assets.definitions"
    )
    instance = dg.DagsterInstance.from_config(str(other / ".dagster"))
    assert len(instance.get_runs()) == 7  # the demo's steps, all of them there


def test_an_instance_holds_the_runs_of_one_data_root_and_refuses_another(tmp_path: Path, capsys, monkeypatch):
    from longattn_assets.cli import main

    monkeypatch.chdir(tmp_path)  # no .env: the instance is the one exported
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "instance"))
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance/longattn-data-root").write_text(f"{tmp_path / 'first'}\n")
    argv = ["demo", "--data-root", str(tmp_path / "second"), "--window-size", "64", "--device", "cpu"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"longattn: error: the Dagster instance {tmp_path / 'instance'} holds the runs of the data root "
        f"{tmp_path / 'first'}, not {tmp_path / 'second'}: run the demo with the data root {tmp_path / 'first'}, "
        "or with DAGSTER_HOME set to another folder\n"
    )
    assert sorted(p.name for p in (tmp_path / "instance").iterdir()) == ["longattn-data-root"]
    assert not (tmp_path / "second").exists()
