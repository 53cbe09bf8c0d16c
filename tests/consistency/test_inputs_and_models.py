"""What makes files current, round two (issue 23): the model's weights, the input files'
content (not their size and mtime) and the set of input files, everywhere a file is read."""

import os
import shutil
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from tests.consistency.conftest import code_rows, write_corpus
from tests.consistency.pipeline import (
    WINDOW,
    dataset,
    failure,
    fresh,
    materialize,
    run_demo,
    shard_key,
    started,
)
from tests.consistency.test_commands import edit_keeping_size_and_mtime
from tests.corpus_fixtures import write_jsonl


def _modules(counts, num_shards: int, **environment: str):
    counts.use(num_shards, **environment)
    return {name: sys.modules[f"longattn_assets.{name}"] for name in ("assets.current", "consistency", "resources", "schedules", "definitions")}


def _resources(modules, root: Path, input_dir: Path, model: str | None = None) -> dict:
    res = modules["resources"]
    scorer = {"model": model} if model else {}
    return {
        "data_root": res.DataRoot(root=str(root)), "corpus_input": res.CorpusInput(input_dir=str(input_dir)),
        "windowing": res.Windowing(window_size=WINDOW), "attention_scorer": res.AttentionScorer(device="cpu", **scorer),
    }  # fmt: skip


def _job(modules, name: str, partition, resources: dict) -> dg.ExecuteInProcessResult:
    job = modules["definitions"].defs.resolve_job_def(name)
    return job.execute_in_process(partition_key=partition, resources=resources, raise_on_error=False)


def test_another_checkpoint_with_the_same_tokenizer_makes_the_scores_stale_everywhere(
    counts, corpus, checkpoints, scratch, tmp_path
):
    """Item 1: scores of checkpoint A are refused by every reader configured with checkpoint B
    (assets, selection_job, schedules), and the demo with B ends equal to a fresh run with B."""
    first, second = (str(path) for path in checkpoints)
    root = tmp_path / "data"
    assert materialize(counts, 1, ["raw_corpus"], "code", root, corpus).success
    assert materialize(counts, 1, ["windowed_chunks", "scored_chunks"], shard_key("00000"), root, corpus, model=first).success
    assert materialize(counts, 1, ["longabc_dataset"], "code", root, corpus, model=first).success
    modules = _modules(counts, 1)
    fingerprints = [modules["resources"].AttentionScorer(model=m).model_identity()["model"] for m in (first, second)]
    assert fingerprints[0] != fingerprints[1]
    stale = f"code|00000: scored_chunks was made with model {fingerprints[0]}, now {fingerprints[1]}"
    todo = "(run: materialize scored_chunks code|00000)"
    for asset in ("longabc_dataset", "scorer_diagnostics"):
        message = failure(materialize(counts, 1, [asset], "code", root, corpus, model=second))
        assert stale in message and todo in message, asset
    message = failure(_job(modules, "selection_job", "code", _resources(modules, root, corpus, second)))
    assert stale in message and todo in message

    expected = modules["assets.current"].expected_now("code", *_resources(modules, root, corpus, second).values(), scores=True)
    plan = modules["schedules"].plan_category(modules["resources"].DataRoot(root=str(root)).layout, "code", ["00000"], expected, set())
    assert [(w.shard, w.assets) for w in plan.works] == [("00000", ("scored_chunks",))] and plan.blocked is None

    said = []
    counts.use(1, LONGATTN_MODEL=second).run_demo(
        root, window_size=WINDOW, input_dir=corpus, device="cpu", categories=["code"], say=said.append
    )
    assert "  code|00000 scores" in [line.split(":")[0] for line in said]
    again = tmp_path / "fresh"
    counts.use(1, LONGATTN_MODEL=second).run_demo(again, window_size=WINDOW, input_dir=corpus, device="cpu",
                                                  categories=["code"], say=lambda line: None)  # fmt: skip
    assert dataset(root) == dataset(again)
    assert set(pq.read_table(root / "scored_chunks/category=code/shard=00000.parquet").column("model").to_pylist()) == {fingerprints[1]}


def test_an_edit_keeping_size_and_mtime_and_an_added_file_are_seen_and_a_copy_is_not_redone(
    counts, corpus, scratch, tmp_path
):
    """Items 2 and 3: the inputs' content decides. A copy of the inputs (every file's version
    new, content the same) leaves the data current. A word changed with size and mtime kept,
    and a file added, make raw_corpus stale for every job that reads it (shard_job,
    selection_job, each naming the files and what to run) and for the demo, which ends equal
    to a fresh run. (One scenario for both: each fresh run of the pipeline costs a minute.)"""
    inputs = tmp_path / "inputs"
    shutil.copytree(corpus, inputs)  # new inodes and ctimes, same bytes
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    said = run_demo(counts, 2, root, inputs)
    assert sum("up to date" in line for line in said) == 5, said

    edit_keeping_size_and_mtime(inputs / "code" / "part-0.jsonl", "import", "IMPORT")
    message = failure(materialize(counts, 2, ["windowed_chunks"], shard_key("00000"), root, inputs))
    assert "raw_corpus was read from other input files than those there now: changed part-0.jsonl" in message
    assert "run materialize raw_corpus code first" in message
    write_jsonl(inputs / "code" / "part-1.jsonl", code_rows(1, offset=8))
    modules = _modules(counts, 2)
    resources = _resources(modules, root, inputs)
    for job, partition in (("shard_job", shard_key("00001")), ("selection_job", "code")):
        message = failure(_job(modules, job, partition, resources))
        changes = "raw_corpus was read from other input files than those there now: added part-1.jsonl; changed part-0.jsonl"
        assert changes in message and "materialize raw_corpus code" in message, job
    said = run_demo(counts, 2, root, inputs)
    assert "  raw_corpus: up to date" not in said
    assert dataset(root) == fresh(counts, 2, inputs, scratch)


def test_touching_an_input_without_changing_it_redoes_nothing(counts, corpus, scratch, tmp_path):
    """A new mtime with the same bytes is hashed once and found unchanged; nothing is redone."""
    inputs = write_corpus(tmp_path / "inputs", code_rows(8))
    root = started(counts, 2, corpus, scratch, tmp_path / "data")
    part = inputs / "code" / "part-0.jsonl"
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    selected = root / "longabc_dataset/category=code/selected.parquet"
    before = selected.stat().st_mtime_ns
    said = run_demo(counts, 2, root, inputs)
    assert sum("up to date" in line for line in said) == 5, said
    assert selected.stat().st_mtime_ns == before
