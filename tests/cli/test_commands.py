"""The commands a user types: longattn window/score/select/demo and the Dagster CLI."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longattn_assets import progress
from longattn_assets.cli import main
from longattn_assets.demo import run_demo
from tests.corpus_fixtures import stdlib_sources, write_jsonl

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_window_score_select_from_the_command_line(tmp_path: Path, capsys):
    rows = [
        {"id": f"mod/{name}", "text": text} for name, text in stdlib_sources(6, min_chars=8_000)
    ]
    rows.append({"id": "broken", "text": None})
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    windows = tmp_path / "w.parquet"
    assert (
        main(
            [
                "window",
                str(source),
                "--category",
                "code",
                "--output",
                str(windows),
                "--window-size",
                "256",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["rejects"] == 1 and Path(summary["rejects_file"]).is_file()
    table = pq.read_table(windows)
    assert set(table.column("doc_id").to_pylist()) <= {r["id"] for r in rows}
    assert table.num_rows == summary["windows"] > 0

    scores = tmp_path / "s.parquet"
    assert main(["score", str(windows), "--output", str(scores), "--device", "cpu", "--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["workers"] == 2
    scored = pq.read_table(scores)
    assert scored.column("data_id").to_pylist() == table.column("data_id").to_pylist()
    assert scored.schema.names == [
        "data_id",
        "n_tokens",
        "tokens_hash",
        "ds",
        "du",
        "ds_heads",
        "du_heads",
        "model",
    ]

    out = tmp_path / "sel"
    capsys.readouterr()
    assert (
        main(
            [
                "select",
                "--windows",
                str(windows),
                "--scores",
                str(scores),
                "--output",
                str(out),
                "--keep-fraction",
                "0.25",
                "--report",
            ]
        )
        == 0
    )
    said = capsys.readouterr()
    result = json.loads(said.out)
    assert result["kept"] == table.num_rows // 4
    # where it wrote, in the summary and for a person
    assert (result["dataset"], result["report"]) == (str(out), str(out / "report.html"))
    assert said.err == f"dataset: {out}\nreport: {out / 'report.html'}\n"
    lines = (out / "longabc.jsonl").read_text().splitlines()
    assert len(lines) == result["kept"] and set(json.loads(lines[0])) == {"content", "data_id"}
    assert (out / "report.html").is_file() and (out / "hf" / "README.md").is_file()
    # No --category: the outputs are named after the windows' own category.
    assert "<title>LongABC selection: code</title>" in (out / "report.html").read_text()
    assert json.loads((out / "selection.json").read_text())["category"] == "code"


def test_demo_runs_everything_then_reuses_it(small_corpus: Path, tmp_path: Path, monkeypatch):
    # the demo's 20 s, shortened below the time any step takes, however fast the scorer gets
    monkeypatch.setattr(progress, "TERMINAL_EVERY_S", 0.05)
    said: list[str] = []
    reports = run_demo(
        tmp_path / "demo",
        window_size=512,
        input_dir=small_corpus,
        device="cpu",
        categories=["code"],
        say=said.append,
    )
    assert reports["code"].is_file()
    assert any(line.strip().startswith("selection+report:") and "kept=" in line for line in said)
    # long steps say how far they are while they run: scoring a shard, and the controls
    rate = r"[\d,]+/[\d,]+ windows, [\d,]+ tokens/s, \S+ elapsed, ETA \S+"
    assert any(re.fullmatch(rf"    code\|\d{{5}}: scored {rate}", line) for line in said), said
    assert any(re.fullmatch(rf"    code controls: scored {rate}", line) for line in said), said
    # The diagnostics: printed, in the report, and as the UI's metadata in the demo's instance.
    record = json.loads((tmp_path / "demo/scorer_diagnostics/category=code/diagnostics.json").read_text())
    assert any(line.strip() == record["advice"] for line in said)
    page = reports["code"].read_text()
    assert 'id="scorer-diagnostics"' in page and page.count('id="plot-diagnostics-') == 3
    instance = dg.DagsterInstance.from_config(str(tmp_path / "demo/.dagster"))
    event = instance.get_latest_materialization_event(dg.AssetKey("scorer_diagnostics"))
    meta = event.asset_materialization.metadata
    assert meta["lds_auc_concatenated"].value == round(record["separation"]["concatenated"]["lds"]["auc"], 4)
    assert meta["plots"].value.count("data:image/png;base64,") == 3
    selected = tmp_path / "demo/longabc_dataset/category=code/selected.parquet"
    before = selected.stat().st_mtime_ns
    said.clear()
    run_demo(
        tmp_path / "demo",
        window_size=512,
        input_dir=small_corpus,
        device="cpu",
        categories=["code"],
        say=said.append,
    )
    assert sum("up to date" in line for line in said) == 7  # ingest, 4 shards, diagnostics, selection
    assert selected.stat().st_mtime_ns == before


def _dagster(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dagster"), *args],
        cwd=env["WORKDIR"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def shell_env(small_corpus: Path, tmp_path: Path) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGATTN_")}
    env.update(
        DAGSTER_HOME=str(home),
        LONGATTN_DATA_ROOT=str(tmp_path / "data"),
        LONGATTN_INPUT_DIR=str(small_corpus),
        LONGATTN_WINDOW_SIZE="512",
        WORKDIR=str(tmp_path),
    )
    return env


def _materialize(select: str, partition: str, env: dict) -> None:
    done = _dagster("asset", "materialize", "-m", "longattn_assets.definitions",
                    "--select", select, "--partition", partition, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_dagster_cli_materializes_and_scores_a_shard_after_its_category(shell_env: dict, tmp_path: Path):
    _materialize("raw_corpus", "book", shell_env)
    _materialize("windowed_chunks", "book|00000", shell_env)
    table = pq.read_table(tmp_path / "data/windowed_chunks/category=book/shard=00000.parquet")
    assert table.num_rows > 0 and set(table.column("n_tokens").to_pylist()) == {512}
    _materialize("scored_chunks", "book|00000", shell_env)
    scores = pq.read_table(tmp_path / "data/scored_chunks/category=book/shard=00000.parquet")
    assert scores.column("data_id").to_pylist() == table.column("data_id").to_pylist()


def test_dagster_job_execute_takes_the_partition_as_a_tag(shell_env: dict, tmp_path: Path):
    # One shard: the selection takes a category only when every one of its shards is scored.
    shell_env["LONGATTN_NUM_SHARDS"] = "1"
    _materialize("raw_corpus", "code", shell_env)
    for job, partition in (("shard_job", "code|00000"), ("selection_job", "code")):
        done = _dagster("job", "execute", "-m", "longattn_assets.definitions", "-j", job,
                        "--tags", json.dumps({"dagster/partition": partition}), env=shell_env)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    scores = pq.read_table(tmp_path / "data/scored_chunks/category=code")
    selected = pq.read_table(tmp_path / "data/longabc_dataset/category=code/selected.parquet")
    assert selected.num_rows == scores.num_rows // 2 > 0


def test_workspace_definitions_validate(shell_env: dict):
    shell_env["WORKDIR"] = str(REPO)
    done = _dagster("definitions", "validate", "-w", "workspace.yaml", env=shell_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "passed validation" in done.stderr + done.stdout


def test_bad_model_and_unsafe_category_are_one_line_errors(tmp_path: Path, capsys):
    windows = tmp_path / "w.parquet"
    pq.write_table(pa.table({"data_id": ["x"]}), windows)
    assert main(["score", str(windows), "--output", str(tmp_path / "s.parquet"), "--model", "/nope/m.gguf"]) == 2
    assert capsys.readouterr().err.strip() == "longattn: error: GGUF model file /nope/m.gguf does not exist"
    windows.unlink()
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    assert main(["window", str(source), "--category", "../etc", "--output", str(windows)]) == 2
    assert "--category: got '../etc', expected a name of letters" in capsys.readouterr().err
    assert not windows.exists()


def test_rope_overrides_change_scores_and_model_fingerprint(tmp_path: Path, capsys):
    rows = [{"id": name, "text": text} for name, text in stdlib_sources(2, min_chars=8_000)]
    windows = tmp_path / "w.parquet"
    main(["window", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--category", "code",
          "--output", str(windows), "--window-size", "512"])  # fmt: skip
    outputs = {}
    for name, extra in {
        "model": [],
        "theta": ["--rope-theta", "10000"],
        "scaling": ["--rope-scaling", '{"rope_type": "linear", "factor": 4.0}'],
    }.items():
        out = tmp_path / f"{name}.parquet"
        assert main(["score", str(windows), "--output", str(out), "--device", "cpu", *extra]) == 0
        outputs[name] = pq.read_table(out, columns=["ds", "model"]).to_pydict()
    fingerprints = {name: set(table["model"]) for name, table in outputs.items()}
    assert all(len(f) == 1 for f in fingerprints.values())
    assert len(set.union(*fingerprints.values())) == 3
    assert outputs["theta"]["ds"] != outputs["model"]["ds"] != outputs["scaling"]["ds"]


def test_a_demo_after_a_killed_one_ends_its_runs_and_frees_the_gpu_pool(tmp_path: Path):
    """A SIGKILLed demo leaves its run STARTED holding the scoring step's "gpu" slot; without
    the demo lock's clean-up the next demo's scoring step waited for that slot forever."""
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    from longattn_assets.demo import DEMO_TAG, _demo_lock

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())  # the pool: one slot
    instance = dg.DagsterInstance.from_config(str(home))
    dead = DagsterRun(job_name="__ephemeral_asset_job__", status=DagsterRunStatus.STARTED, tags={DEMO_TAG: "true"})
    other = DagsterRun(job_name="__ephemeral_asset_job__", status=DagsterRunStatus.STARTED)  # not a demo's
    for run in (dead, other):
        instance.add_run(run)
    storage = instance.event_log_storage
    storage.set_concurrency_slots("gpu", 1)  # as dagster.yaml's default_limit
    assert storage.claim_concurrency_slot("gpu", dead.run_id, "scored_chunks").is_claimed
    assert not storage.claim_concurrency_slot("gpu", "next-run", "scored_chunks").is_claimed
    said: list[str] = []
    with _demo_lock(instance, said.append):
        assert said == ["ended 1 run(s) of a demo that was killed, and freed their pool slots"]
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(other.run_id).status == DagsterRunStatus.STARTED
        assert storage.claim_concurrency_slot("gpu", "next-run", "scored_chunks").is_claimed
