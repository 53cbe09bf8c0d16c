"""The five ways a data root went silently inconsistent (issue 11), each now either ending
equal to a fresh run with the final settings or failing with a message naming what to run."""

import json
import math
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests.consistency.conftest import code_rows, write_corpus
from tests.consistency.pipeline import (
    WINDOW,
    dataset,
    failure,
    fresh,
    materialize,
    run_demo,
    shard_files,
    shard_key,
    started,
)


def test_shard_count_change_removes_obsolete_shards_and_refuses_stale_windows(counts, corpus, scratch, tmp_path):
    """Scenario 1: 3 shards, then 2; the old shard files go and the selection never reads them."""
    root = started(counts, 3, corpus, scratch, tmp_path / "data")
    assert materialize(counts, 2, ["raw_corpus"], "code", root, corpus).success
    assert shard_files(root) == {a: ["shard=00000.parquet", "shard=00001.parquet"]
                                 for a in ("raw_corpus", "windowed_chunks", "scored_chunks")}  # fmt: skip
    message = failure(materialize(counts, 2, ["longabc_dataset"], "code", root, corpus))
    assert "2 of 2 shards of 'code' are not ready" in message
    for shard in ("00000", "00001"):
        assert f"code|{shard}: windowed_chunks was made from another raw_corpus file" in message
        assert f"run: materialize windowed_chunks,scored_chunks code|{shard}" in message
    for shard in ("00000", "00001"):
        assert materialize(counts, 2, ["windowed_chunks", "scored_chunks"], shard_key(shard), root, corpus).success
    assert materialize(counts, 2, ["longabc_dataset"], "code", root, corpus).success
    assert dataset(root) == fresh(counts, 2, corpus, scratch)
    selected = dataset(root)["selected"]
    assert len({r["data_id"] for r in selected}) == len(selected)


def test_demo_after_a_window_size_change_equals_a_fresh_run(counts, corpus, scratch, tmp_path):
    """Scenario 2: `longattn demo --window-size` on a root made with another window size."""
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    said = run_demo(counts, 2, root, corpus, window=2 * WINDOW)
    assert "  raw_corpus: up to date" in said
    assert not any("windows+scores: up to date" in line for line in said)
    assert dataset(root) == fresh(counts, 2, corpus, scratch, window=2 * WINDOW)
    assert {r["n_tokens"] for r in dataset(root)["selected"]} == {2 * WINDOW}


def test_demo_with_a_new_input_folder_ingests_it(counts, corpus, scratch, tmp_path):
    """Scenario 2: a new --input-dir holding one more document is read, not reported as done."""
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    bigger = write_corpus(tmp_path / "bigger", code_rows(9))
    said = run_demo(counts, 2, root, bigger)
    assert not any("raw_corpus: up to date" in line or "selection+report: up to date" in line for line in said)
    new_doc = code_rows(9)[-1]["id"]
    windows = pa.concat_tables(pq.read_table(p) for p in (root / "windowed_chunks/category=code").glob("*.parquet"))
    assert new_doc in windows.column("doc_id").to_pylist()
    assert dataset(root) == fresh(counts, 2, bigger, scratch)


def test_demo_after_shard_count_growth_equals_a_fresh_run(counts, corpus, scratch, tmp_path):
    """Scenario 2: 2 then 3 shards: no old windows or selection survive."""
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    run_demo(counts, 3, root, corpus)
    assert dataset(root) == fresh(counts, 3, corpus, scratch)
    assert shard_files(root)["scored_chunks"] == [f"shard=0000{i}.parquet" for i in range(3)]


def test_rescored_shard_is_never_mixed_and_the_demo_redoes_only_that_shard(counts, corpus, scratch, tmp_path):
    """Scenario 2: a shard rescored under other scorer settings; the selection refuses it (its
    model fingerprint is not the configured one), the demo rescores it with its own settings
    and redoes the selection."""
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    assert materialize(counts, 2, ["scored_chunks"], shard_key("00001"), root, corpus, rope_theta=10_000.0).success
    message = failure(materialize(counts, 2, ["longabc_dataset"], "code", root, corpus))
    assert "1 of 2 shards of 'code' are not ready: code|00001: scored_chunks was made with model mdl-" in message
    assert "rope_theta 10000.0, now 100000.0 (run: materialize scored_chunks code|00001)" in message
    said = run_demo(counts, 2, root, corpus)
    # The shard's scores are the same bytes again, so the selection, which refused the mixed
    # shards, is still the current one: only the shard is redone.
    assert [line.split(":")[0].strip() for line in said if "s  " in line] == ["code|00001 scores"]
    assert "  selection+report: up to date" in said
    assert dataset(root) == fresh(counts, 2, corpus, scratch)


def test_demo_rerun_with_nothing_changed_redoes_nothing(counts, corpus, scratch, tmp_path):
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    selected = root / "longabc_dataset/category=code/selected.parquet"
    before = selected.stat().st_mtime_ns
    said = run_demo(counts, 2, root, corpus)
    assert sum("up to date" in line for line in said) == 5  # raw_corpus, 2 shards, diagnostics, selection
    assert selected.stat().st_mtime_ns == before


def test_partly_scored_category_is_refused_naming_the_shard(counts, corpus, scratch, tmp_path):
    """Scenario 3: one shard never scored; longabc_dataset and selection_job both refuse."""
    root = tmp_path / "data"
    assert materialize(counts, 3, ["raw_corpus"], "code", root, corpus).success
    for shard in ("00000", "00001", "00002"):
        names = ["windowed_chunks", "scored_chunks"] if shard != "00002" else ["windowed_chunks"]
        assert materialize(counts, 3, names, shard_key(shard), root, corpus).success
    message = failure(materialize(counts, 3, ["longabc_dataset"], "code", root, corpus))
    assert "1 of 3 shards of 'code' are not ready" in message
    assert "code|00002: scored_chunks is missing (run: materialize scored_chunks code|00002)" in message
    definitions = __import__("longattn_assets.definitions", fromlist=["defs"])
    job = definitions.defs.resolve_job_def("selection_job")
    module = counts.use(3)
    result = job.execute_in_process(
        partition_key="code", raise_on_error=False,
        resources={"data_root": module.DataRoot(root=str(root)), "windowing": module.Windowing(window_size=WINDOW),
                   "corpus_input": module.CorpusInput(input_dir=str(corpus)),
                   "attention_scorer": module.AttentionScorer(device="cpu")},
    )  # fmt: skip
    assert "code|00002: scored_chunks is missing" in failure(result)
    assert not (root / "longabc_dataset").exists()

    assert materialize(counts, 3, ["scored_chunks"], shard_key("00002"), root, corpus).success
    assert materialize(counts, 3, ["longabc_dataset"], "code", root, corpus).success
    record = json.loads((root / "longabc_dataset/category=code/selection.json").read_text())
    card = (root / "longabc_dataset/category=code/hf/README.md").read_text()
    for shard in record["inputs"]["shards"]:
        scores = pq.read_schema(root / shard["scores_file"]).metadata[b"longattn.provenance"]
        assert json.loads(scores)["fingerprint"] == shard["scores"]
        assert f"| {shard['shard']} | {shard['windows']} | {shard['scores']} |" in card
    assert [s["shard"] for s in record["inputs"]["shards"]] == ["00000", "00001", "00002"]
    assert sum(s["rows"] for s in record["inputs"]["shards"]) == record["n"]


def test_nan_scores_fail_the_selection_before_anything_is_written(counts, corpus, scratch, tmp_path):
    """Scores that pass provenance but hold a NaN: the selection refuses them, naming the
    window, before it writes anything (the blocking check scores_finite stays behind it)."""
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    shutil.rmtree(root / "longabc_dataset")
    path = root / "scored_chunks/category=code/shard=00000.parquet"
    table = pq.read_table(path)
    ds = pc.if_else(pa.array([i == 0 for i in range(table.num_rows)]), math.nan, table.column("ds"))
    pq.write_table(table.set_column(table.schema.get_field_index("ds"), "ds", ds), path)
    result = materialize(counts, 2, ["longabc_dataset"], "code", root, corpus)
    data_id = table.column("data_id")[0].as_py()
    assert "windows of the scores read have a NaN or infinite ds/du (" + data_id + ")" in failure(result)
    assert not (root / "longabc_dataset").exists()
