"""scored_chunks, longabc_dataset and longabc_report materialized through Dagster."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from longattn_assets.definitions import assets
from longattn_assets.partitions import shard_partitions
from longattn_assets.resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from tests.conftest import write_small_corpus

WINDOW = 256


def _resources(root: Path, corpus: Path) -> dict:
    return {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(corpus)),
        "windowing": Windowing(window_size=WINDOW),
        "attention_scorer": AttentionScorer(device="cpu"),
    }


@pytest.fixture(scope="module")
def scored_template(tmp_path_factory: pytest.TempPathFactory):
    """One data root with category 'code' ingested, windowed and scored, built once per module."""
    base = tmp_path_factory.mktemp("scored")
    corpus = write_small_corpus(base / "input")
    root = base / "data"
    resources = _resources(root, corpus)
    by_key = {a.key.to_user_string(): a for a in assets}
    assert dg.materialize(
        assets, selection=[by_key["raw_corpus"]], partition_key="code", resources=resources
    ).success
    results = []
    for shard in shard_partitions.get_partition_keys():
        key = dg.MultiPartitionKey({"category": "code", "shard": shard})
        result = dg.materialize(
            assets,
            selection=[by_key["windowed_chunks"], by_key["scored_chunks"]],
            partition_key=key,
            resources=resources,
        )
        assert result.success
        results.append(result)
    return corpus, root, by_key, results


@pytest.fixture
def scored_root(scored_template, tmp_path: Path):
    """A copy of the scored template root for one test to change."""
    corpus, template, by_key, results = scored_template
    root = tmp_path / "data"
    shutil.copytree(template, root)
    return root, _resources(root, corpus), by_key, results


def test_scored_chunks_files_and_metadata(scored_root):
    root, _, _, results = scored_root
    meta = results[0].asset_materializations_for_node("scored_chunks")[0].metadata
    for key in (
        "windows",
        "tokens",
        "seconds",
        "tokens_per_s",
        "peak_memory_bytes",
        "device",
        "model",
    ):
        assert key in meta
    assert meta["device"].value == "cpu"
    assert meta["kernel"].value == "torch"  # which statistics kernel ran (auto on CPU)
    windows = pq.read_table(root / "windowed_chunks/category=code/shard=00000.parquet")
    scores = pq.read_table(root / "scored_chunks/category=code/shard=00000.parquet")
    assert scores.column("data_id").to_pylist() == windows.column("data_id").to_pylist()
    assert (
        meta["windows"].value == scores.num_rows
        and meta["tokens"].value == scores.num_rows * WINDOW
    )
    for row in scores.to_pylist():
        assert 0.0 <= row["ds"] <= 1.0 and row["du"] >= 0.0
        assert len(row["ds_heads"]) == len(row["du_heads"]) == 9  # SmolLM2's query heads
        assert row["ds"] == pytest.approx(sum(row["ds_heads"]) / 9, rel=1e-6)


def test_selection_report_and_checks(scored_root):
    root, resources, by_key, _ = scored_root
    result = dg.materialize(
        assets,
        selection=[by_key["longabc_dataset"], by_key["longabc_report"]],
        partition_key="code",
        resources=resources,
        run_config={"ops": {"longabc_dataset": {"config": {"keep_fraction": 0.25}}}},
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(
        [
            "windows_have_configured_length",
            "data_ids_unique",
            "scores_finite",
            "scores_from_one_model",
            "ds_within_unit_interval",
            "selection_follows_rule",
        ],
        True,
    )
    total = sum(
        pq.read_metadata(p).num_rows
        for p in (root / "scored_chunks/category=code").glob("shard=*.parquet")
    )
    selected = pq.read_table(root / "longabc_dataset/category=code/selected.parquet")
    assert selected.num_rows == total // 4
    # The scored layer (LONGATTN_LAYER, default 0) is in the card's settings and selection.json.
    assert "| layer | 0 |" in (root / "longabc_dataset/category=code/hf/README.md").read_text()
    record = json.loads((root / "longabc_dataset/category=code/selection.json").read_text())
    assert record["settings_extra"]["layer"] == record["inputs"]["scores_recipe"]["layer"] == 0
    report_meta = result.asset_materializations_for_node("longabc_report")[0].metadata
    for name in ("ds", "du", "lds"):  # short enough for the UI to show in place
        assert report_meta[f"{name}_histogram"].value.startswith(f"![{name}](<data:image/svg+xml,")
        assert len(report_meta[f"{name}_histogram"].value) < 1000
    dataset_check = {e.check_name: e for e in result.get_asset_check_evaluations()}["scores_finite"]
    assert dataset_check.metadata["category"].value == "code"
    assert set(dataset_check.metadata) >= {"code/windows", "code/not_finite"}
    assert (root / "longabc_report/category=code/report.html").is_file()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    return " ".join(e.step_failure_data.error.message for e in result.all_events if e.is_step_failure)


def test_selection_refuses_shards_scored_by_different_models(scored_root):
    root, resources, by_key, _ = scored_root
    key = dg.MultiPartitionKey({"category": "code", "shard": "00001"})
    other = resources | {"attention_scorer": AttentionScorer(device="cpu", rope_theta=10000.0)}
    assert dg.materialize(assets, selection=[by_key["scored_chunks"]], partition_key=key, resources=other).success
    result = dg.materialize(
        assets, selection=[by_key["longabc_dataset"]], partition_key="code", resources=resources,
        raise_on_error=False,
    )  # fmt: skip
    message = _failure(result)
    # the rescored shard is not the configured model's: refused, naming the shard and what to run
    assert f"1 of {len(shard_partitions.get_partition_keys())} shards of 'code' are not ready: code|00001: scored_chunks was made with model" in message
    assert "(run: materialize scored_chunks code|00001)" in message
    models = {pq.read_table(p, columns=["model"]).column(0)[0].as_py()
              for p in (root / "scored_chunks/category=code").glob("shard=*.parquet")}  # fmt: skip
    assert len(models) == 2 and all(model in message for model in models)
    assert not (root / "longabc_dataset").exists()


def test_selection_refuses_windows_of_another_window_size(scored_root):
    root, resources, by_key, _ = scored_root
    resources = resources | {"windowing": Windowing(window_size=WINDOW * 2)}
    result = dg.materialize(
        assets, selection=[by_key["longabc_dataset"]], partition_key="code", resources=resources,
        raise_on_error=False,
    )  # fmt: skip
    message = _failure(result)
    for shard in shard_partitions.get_partition_keys():
        assert f"code|{shard}: windowed_chunks was made with window_size {WINDOW}, now {2 * WINDOW}" in message
        assert f"run: materialize windowed_chunks,scored_chunks code|{shard}" in message
    assert not (root / "longabc_dataset").exists()


def test_runs_of_one_process_share_one_scorer_per_settings():
    # Dagster gives each run its own copy of a resource; the scorer (weights, token table,
    # workers) is built once per process for the same settings and model file.
    scorer = AttentionScorer(device="cpu", workers=1).scorer("cpu")
    assert AttentionScorer(device="cpu", workers=1).scorer("cpu") is scorer
    assert AttentionScorer(device="auto", workers=1).scorer("auto") is scorer  # no GPU here: auto is cpu
    other = AttentionScorer(device="cpu", workers=1, block_size=256).scorer("cpu")
    assert other is not scorer and other.block_size == 256 and other.workers == 1
    # another layer is another scorer: its rows depend on context, it keeps no token table
    above = AttentionScorer(device="cpu", workers=1, layer=1).scorer("cpu")
    assert above is not scorer and above.weights.lower_layers and above.projector._table is None
    assert scorer.projector._table is not None


def test_a_model_folder_rewritten_in_place_is_a_new_scorer_and_identity(tmp_path):
    # A long-lived process (the daemon, a code server, the demo) keeps scorers and model
    # identities; a safetensors file rewritten in place leaves the folder's mtime as it was,
    # so the key must follow the files, or the process would score with the old weights.
    import os
    import shutil

    from tests.consistency.conftest import tiny_llama

    folder = tiny_llama(tmp_path / "model", seed=0)
    other = tiny_llama(tmp_path / "other", seed=1)
    resource = AttentionScorer(model=str(folder), device="cpu", workers=1)
    scorer, identity = resource.scorer("cpu"), resource.model_identity()
    folder_times = os.stat(folder)
    for path in sorted(other.glob("*.safetensors")):
        with open(path, "rb") as source, open(folder / path.name, "r+b") as target:
            target.truncate(0)
            shutil.copyfileobj(source, target)  # the same file, new bytes: the folder is untouched
    os.utime(folder, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
    again = AttentionScorer(model=str(folder), device="cpu", workers=1)
    assert again.scorer("cpu") is not scorer
    assert again.model_identity()["model"] != identity["model"]
    assert again.scorer("cpu").fingerprint == again.model_identity()["model"]
